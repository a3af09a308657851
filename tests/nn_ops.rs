//! Convolution, pooling, data movement, dropout, batch norm and losses: forward against f64
//! references on odd shapes, gradients against finite differences.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::{
    Activation, Context, DispatchSummary, Executor, Fused, Graph, NodeId, Padding, PlanSummary,
    Shader, Shape, UnaryOp, WindowOpts,
};

const TOL: f64 = 1e-4;
const GTOL: f64 = 2e-3;

/// The plan computing the gradients of Σ y² (y: what `build` makes
/// of fixed inputs with these shapes; y² keeps y itself in the plan) with respect to the
/// inputs from `first` on.
fn gradient_plan(
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    first: usize,
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
) -> PlanSummary {
    let ctx = ctx();
    let g = Graph::new();
    let v = fixed_inputs(&g, shapes);
    let y = build(&g, &v);
    let loss = g.reduce_sum(g.mul(y, y).unwrap(), &[]).unwrap();
    let grads = g.grad(loss, &v[first..]).unwrap();
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let feed: Vec<(NodeId, &[f32])> = v.iter().zip(data).map(|(&x, d)| (x, &d[..])).collect();
    ex.plan_summary(&grads, &feed, false).unwrap()
}

fn rand_data(shapes: &[Vec<usize>], seed: u64) -> Vec<Vec<f32>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand_vec(s.iter().product(), seed * 7 + i as u64))
        .collect()
}

/// (name, input [n,c,h,w], out channels, kernel, opts, expected geometry)
fn conv_cases() -> Vec<(
    &'static str,
    [usize; 4],
    usize,
    (usize, usize),
    WindowOpts,
    Geo,
)> {
    let g = |k, s, p, d, o| Geo { k, s, p, d, o };
    vec![
        (
            "valid 3x3",
            [2, 3, 7, 9],
            4,
            (3, 3),
            WindowOpts::default(),
            g((3, 3), (1, 1), (0, 0), (1, 1), (5, 7)),
        ),
        (
            "same 5x5 stride 2",
            [2, 1, 9, 8],
            3,
            (5, 5),
            WindowOpts::default().stride(2).padding(Padding::Same),
            g((5, 5), (2, 2), (2, 2), (1, 1), (5, 4)),
        ),
        (
            "explicit pad 1, stride 2",
            [1, 2, 6, 7],
            5,
            (3, 2),
            WindowOpts::default()
                .stride(2)
                .padding(Padding::Explicit(1, 1)),
            g((3, 2), (2, 2), (1, 1), (1, 1), (3, 4)),
        ),
        (
            "dilation 2",
            [2, 2, 9, 9],
            3,
            (3, 3),
            WindowOpts::default().dilation(2),
            g((3, 3), (1, 1), (0, 0), (2, 2), (5, 5)),
        ),
        (
            "same, even kernel, stride 1",
            [2, 3, 6, 7],
            5,
            (4, 4),
            WindowOpts::default().padding(Padding::Same),
            g((4, 4), (1, 1), (1, 1), (1, 1), (6, 7)),
        ),
        (
            "wide, stride 1: 40 filters of 4·3·3 taps",
            [2, 4, 6, 6],
            40,
            (3, 3),
            WindowOpts::default().padding(Padding::Same),
            g((3, 3), (1, 1), (1, 1), (1, 1), (6, 6)),
        ),
        (
            "same, even kernel, stride 3",
            [1, 3, 10, 11],
            2,
            (4, 4),
            WindowOpts::default().stride(3).padding(Padding::Same),
            g((4, 4), (3, 3), (1, 1), (1, 1), (4, 4)),
        ),
    ]
}

#[test]
fn conv2d_matches_reference() {
    conv2d_forward_on(&ctx());
}

#[test]
fn conv2d_gradients() {
    conv2d_gradients_on(&ctx());
}

/// The same checks on the kernels for adapters without subgroups (on lavapipe the default
/// context uses the subgroup kernels).
#[test]
fn conv2d_without_subgroups() {
    let ctx = ctx_without_subgroups();
    conv2d_forward_on(&ctx);
    conv2d_gradients_on(&ctx);
}

/// The same checks with every product that can read its operands from textures doing so
/// (on CPU adapters: the texture kernel reading images through the window, filters a
/// texel or a float at a time).
#[test]
fn conv2d_with_textures_wherever_they_fit() {
    let ctx = ctx_with_textures(wgrad::OperandTextures::Always);
    conv2d_forward_on(&ctx);
    conv2d_gradients_on(&ctx);
}

/// Convolution products read the image through the window: no im2col is stored, forward or
/// backward. The input gradient of a stride-1 convolution is one product through the
/// transposed window; with larger strides it goes through col2im. On CPU adapters, products
/// of many filters whose A has whole texels per row read it, and the images, from textures:
/// the wide case's forward product (40 filters of 36 taps) and filter gradient (40 × 36
/// positions), not the narrow cases' products.
#[test]
fn conv2d_reads_images_without_im2col() {
    let cases = conv_cases();
    for (name, xs, oc, k, opts, _) in [cases[1], cases[4], cases[5]] {
        let shapes = vec![xs.to_vec(), vec![oc, xs[1], k.0, k.1], vec![oc]];
        let d = rand_data(&shapes, 5);
        let plan = gradient_plan(&shapes, &d, 0, |g, v| {
            g.conv2d(v[0], v[1], Some(v[2]), opts).unwrap()
        });
        assert_eq!(plan.count_entry("im2col"), 0, "{name}:\n{plan}");
        // The forward product and the filter gradient read the image.
        assert_eq!(plan.count_fused(Fused::Im2colGather), 2, "{name}:\n{plan}");
        let stride_1 = name.contains("stride 1");
        assert_eq!(
            plan.count_fused(Fused::TransposedWindow),
            stride_1 as usize,
            "{name}:\n{plan}"
        );
        assert_eq!(
            plan.count_entry("col2im"),
            !stride_1 as usize,
            "{name}:\n{plan}"
        );
        let c = ctx();
        let wide = name.starts_with("wide");
        if c.is_cpu() && c.subgroup_size().is_some() {
            let textures = 2 * wide as usize;
            assert_eq!(
                plan.count_shader(Shader::MatmulTexture),
                textures,
                "{name}:\n{plan}"
            );
        }
    }
}

/// conv → tanh → conv, the second with stride 1 and with stride 2: the tanh gradient folds
/// into what computes the second convolution's input gradient (the product through the
/// transposed window, or col2im), and every gradient still matches.
#[test]
fn conv_tanh_conv_gradients_fold_into_the_input_gradient() {
    let same = WindowOpts::default().padding(Padding::Same);
    let geo = |s, o| Geo {
        k: (3, 3),
        s: (s, s),
        p: (1, 1),
        d: (1, 1),
        o,
    };
    for stride in [1, 2] {
        let second = WindowOpts::default()
            .stride(stride)
            .padding(Padding::Explicit(1, 1));
        let out = if stride == 1 { (6, 5) } else { (3, 3) };
        let shapes = vec![
            vec![2, 2, 6, 5],
            vec![3, 2, 3, 3],
            vec![3],
            vec![2, 3, 3, 3],
        ];
        let build = |g: &Graph, v: &[NodeId]| {
            let h = g.conv2d(v[0], v[1], None, same).unwrap();
            let h = g.bias_act(h, v[2], 1, Some(UnaryOp::Tanh)).unwrap();
            g.conv2d(h, v[3], None, second).unwrap()
        };
        let reference = |v: &[Vec<f64>]| {
            let h = conv_ref(&v[0], [2, 2, 6, 5], &v[1], 3, Some(&v[2]), geo(1, (6, 5)));
            let h: Vec<f64> = h.iter().map(|x| x.tanh()).collect();
            conv_ref(&h, [2, 3, 6, 5], &v[3], 2, None, geo(stride, out))
        };
        let d = rand_data(&shapes, 8);
        let name = format!("conv tanh conv, stride {stride}");
        check_grad(&name, &shapes, &d, build, reference, GTOL);
        let plan = gradient_plan(&shapes, &d, 0, build);
        let tanh_grad = Fused::ActivationGrad(Activation::Tanh);
        let folded = |d: &DispatchSummary| {
            if stride == 1 {
                d.has(tanh_grad) && d.has(Fused::TransposedWindow)
            } else {
                d.entry == "col2im" && d.has(tanh_grad)
            }
        };
        assert_eq!(plan.count(folded), 1, "{name}:\n{plan}");
    }
}

/// tanh → pooling (windows that tile the image, and overlapping ones): the tanh gradient
/// folds into the pooling gradient, and the gradients still match.
#[test]
fn activation_gradient_folds_into_pooling_gradients() {
    for (name, xs, k, opts, geo) in [pool_cases()[1], pool_cases()[2]] {
        for max in [true, false] {
            let shapes = vec![xs.to_vec(), vec![xs[1]]];
            let build = |g: &Graph, v: &[NodeId]| {
                let h = g.bias_act(v[0], v[1], 1, Some(UnaryOp::Tanh)).unwrap();
                if max {
                    g.max_pool2d(h, k, opts).unwrap()
                } else {
                    g.avg_pool2d(h, k, opts).unwrap()
                }
            };
            let reference = |v: &[Vec<f64>]| {
                let plane = xs[2] * xs[3];
                let h: Vec<f64> = (0..v[0].len())
                    .map(|i| (v[0][i] + v[1][i / plane % xs[1]]).tanh())
                    .collect();
                pool_ref(&h, xs, geo, max)
            };
            let d = rand_data(&shapes, 9);
            check_grad(
                &format!("{name} max={max}"),
                &shapes,
                &d,
                build,
                reference,
                GTOL,
            );
            let plan = gradient_plan(&shapes, &d, 0, build);
            let folded = |d: &DispatchSummary| {
                d.shader == Shader::Pool
                    && d.entry.contains("backward")
                    && d.has(Fused::ActivationGrad(Activation::Tanh))
            };
            assert_eq!(plan.count(folded), 1, "{name}:\n{plan}");
        }
    }
}

/// A scaling read only by products (a dense layer's input, a convolution's image) becomes
/// the products' alpha: no dispatch of its own, and the values and gradients still match.
#[test]
fn scaling_folds_into_products() {
    let same = WindowOpts::default().padding(Padding::Same);
    let geo = Geo {
        k: (3, 3),
        s: (1, 1),
        p: (1, 1),
        d: (1, 1),
        o: (6, 5),
    };
    let conv = |g: &Graph, v: &[NodeId]| {
        let x = g.scale(v[0], 0.37).unwrap();
        g.conv2d(x, v[1], Some(v[2]), same).unwrap()
    };
    let conv_want = |v: &[Vec<f64>]| {
        let x: Vec<f64> = v[0].iter().map(|a| a * 0.37).collect();
        conv_ref(&x, [2, 2, 6, 5], &v[1], 3, Some(&v[2]), geo)
    };
    let dense = |g: &Graph, v: &[NodeId]| g.matmul(g.scale(v[0], -1.3).unwrap(), v[1]).unwrap();
    let dense_want = |v: &[Vec<f64>]| {
        let x: Vec<f64> = v[0].iter().map(|a| a * -1.3).collect();
        matmul_ref(&x, &[5, 7], &v[1], &[7, 4], false, false)
    };
    let cases: Vec<(
        &str,
        Vec<Vec<usize>>,
        &dyn Fn(&Graph, &[NodeId]) -> NodeId,
        &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
    )> = vec![
        (
            "conv",
            vec![vec![2, 2, 6, 5], vec![3, 2, 3, 3], vec![3]],
            &conv,
            &conv_want,
        ),
        ("dense", vec![vec![5, 7], vec![7, 4]], &dense, &dense_want),
    ];
    for (name, shapes, build, want) in cases {
        let d = rand_data(&shapes, 11);
        let (got, _) = run(&shapes, &d, build);
        let v64: Vec<Vec<f64>> = d.iter().map(|x| to64(x)).collect();
        assert_close(name, &got, &want(&v64), TOL);
        check_grad(name, &shapes, &d, build, want, GTOL);
        // Not the input's gradient: its scaling back is a dispatch of its own.
        let plan = gradient_plan(&shapes, &d, 1, build);
        assert_eq!(plan.count_shader(Shader::Unary), 0, "{name}:\n{plan}");
    }
}

fn conv2d_forward_on(ctx: &Context) {
    for (name, xs, oc, k, opts, geo) in conv_cases() {
        let shapes = vec![xs.to_vec(), vec![oc, xs[1], k.0, k.1], vec![oc]];
        let d = rand_data(&shapes, 1);
        let (got, shape) = run_on(ctx, &shapes, &d, |g, x| {
            g.conv2d(x[0], x[1], Some(x[2]), opts).unwrap()
        });
        assert_eq!(
            shape,
            Shape::fixed(&[xs[0], oc, geo.o.0, geo.o.1]),
            "{name}"
        );
        let want = conv_ref(&to64(&d[0]), xs, &to64(&d[1]), oc, Some(&to64(&d[2])), geo);
        assert_close(name, &got, &want, TOL);
    }
}

fn conv2d_gradients_on(ctx: &Context) {
    for (name, xs, oc, k, opts, geo) in conv_cases() {
        let shapes = vec![xs.to_vec(), vec![oc, xs[1], k.0, k.1], vec![oc]];
        check_grad_on(
            ctx,
            name,
            &shapes,
            &rand_data(&shapes, 2),
            |g, x| g.conv2d(x[0], x[1], Some(x[2]), opts).unwrap(),
            |x| conv_ref(&x[0], xs, &x[1], oc, Some(&x[2]), geo),
            GTOL,
        );
    }
}

fn pool_cases() -> Vec<(&'static str, [usize; 4], (usize, usize), WindowOpts, Geo)> {
    let g = |k, s, p, o| Geo {
        k,
        s,
        p,
        d: (1, 1),
        o,
    };
    vec![
        (
            "2x2 stride 2",
            [2, 3, 8, 7],
            (2, 2),
            WindowOpts::default().stride(2),
            g((2, 2), (2, 2), (0, 0), (4, 3)),
        ),
        (
            "3x3 stride 3",
            [1, 2, 14, 14],
            (3, 3),
            WindowOpts::default().stride(3),
            g((3, 3), (3, 3), (0, 0), (4, 4)),
        ),
        (
            "3x3 stride 2 pad 1",
            [2, 2, 7, 6],
            (3, 3),
            WindowOpts::default()
                .stride(2)
                .padding(Padding::Explicit(1, 1)),
            g((3, 3), (2, 2), (1, 1), (4, 3)),
        ),
        (
            "3x3 stride 1 same",
            [1, 1, 5, 6],
            (3, 3),
            WindowOpts::default().padding(Padding::Same),
            g((3, 3), (1, 1), (1, 1), (5, 6)),
        ),
    ]
}

#[test]
fn pooling_matches_reference() {
    for (name, xs, k, opts, geo) in pool_cases() {
        let shapes = vec![xs.to_vec()];
        let d = rand_data(&shapes, 3);
        for max in [true, false] {
            let (got, _) = run(&shapes, &d, |g, x| {
                if max {
                    g.max_pool2d(x[0], k, opts).unwrap()
                } else {
                    g.avg_pool2d(x[0], k, opts).unwrap()
                }
            });
            assert_close(
                &format!("{name} max={max}"),
                &got,
                &pool_ref(&to64(&d[0]), xs, geo, max),
                TOL,
            );
        }
    }
}

#[test]
fn pooling_gradients() {
    for (name, xs, k, opts, geo) in pool_cases() {
        let shapes = vec![xs.to_vec()];
        for max in [true, false] {
            check_grad(
                &format!("{name} max={max}"),
                &shapes,
                &rand_data(&shapes, 4),
                |g, x| {
                    if max {
                        g.max_pool2d(x[0], k, opts).unwrap()
                    } else {
                        g.avg_pool2d(x[0], k, opts).unwrap()
                    }
                },
                |x| pool_ref(&x[0], xs, geo, max),
                GTOL,
            );
        }
    }
}

#[test]
fn concat_slice_and_gradients() {
    let shapes = vec![vec![2, 3, 4], vec![2, 5, 4]];
    let d = rand_data(&shapes, 5);
    let (got, shape) = run(&shapes, &d, |g, x| g.concat(x[0], x[1], 1).unwrap());
    assert_eq!(shape, Shape::fixed(&[2, 8, 4]));
    let mut want = Vec::new();
    for o in 0..2 {
        want.extend(d[0][o * 12..(o + 1) * 12].iter().map(|&v| v as f64));
        want.extend(d[1][o * 20..(o + 1) * 20].iter().map(|&v| v as f64));
    }
    assert_close("concat axis 1", &got, &want, 0.0);
    let (got, _) = run(&shapes[1..], &d[1..], |g, x| {
        g.slice(x[0], -2, 1, 4).unwrap()
    });
    let want: Vec<f64> = (0..2)
        .flat_map(|o| (1..4).flat_map(move |j| (0..4).map(move |i| (o, j, i))))
        .map(|(o, j, i)| d[1][(o * 5 + j) * 4 + i] as f64)
        .collect();
    assert_close("slice", &got, &want, 0.0);
    check_grad(
        "concat then slice",
        &shapes,
        &rand_data(&shapes, 6),
        |g, x| {
            let c = g.concat(x[0], x[1], 1).unwrap();
            g.mul(g.slice(c, 1, 2, 7).unwrap(), g.slice(c, 1, 0, 5).unwrap())
                .unwrap()
        },
        |x| {
            let mut c = Vec::new();
            for o in 0..2 {
                c.extend_from_slice(&x[0][o * 12..(o + 1) * 12]);
                c.extend_from_slice(&x[1][o * 20..(o + 1) * 20]);
            }
            (0..2)
                .flat_map(|o| (0..5).flat_map(move |j| (0..4).map(move |i| (o, j, i))))
                .map(|(o, j, i)| c[(o * 8 + j + 2) * 4 + i] * c[(o * 8 + j) * 4 + i])
                .collect()
        },
        GTOL,
    );
}

#[test]
fn losses_match_reference() {
    let shapes = vec![vec![9, 5], vec![9, 5]];
    let mut d = rand_data(&shapes, 7);
    d[0].iter_mut().for_each(|v| *v *= 40.0); // large logits: must not overflow
    d[1].iter_mut().for_each(|v| *v = (*v > 0.0) as u8 as f32);
    let (bce, _) = run(&shapes, &d, |g, x| {
        g.binary_cross_entropy_with_logits(x[0], x[1]).unwrap()
    });
    let want: Vec<f64> = d[0]
        .iter()
        .zip(&d[1])
        .map(|(&z, &t)| {
            let (z, t) = (z as f64, t as f64);
            z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()
        })
        .collect();
    assert_close("binary_cross_entropy_with_logits", &bce, &want, TOL);
    let (se, _) = run(&shapes, &d, |g, x| g.squared_error(x[0], x[1]).unwrap());
    let want: Vec<f64> = (0..9)
        .map(|r| {
            (0..5)
                .map(|j| (d[0][r * 5 + j] as f64 - d[1][r * 5 + j] as f64).powi(2))
                .sum()
        })
        .collect();
    assert_close("squared_error", &se, &want, TOL);
    // Class indices give the same loss as one-hot rows.
    let idx: Vec<f32> = (0..9).map(|r| (r * 3 % 5) as f32).collect();
    let onehot: Vec<f32> = (0..45)
        .map(|i| ((i % 5) as f32 == idx[i / 5]) as u8 as f32)
        .collect();
    let (a, _) = run(
        &[vec![9, 5], vec![9]],
        &[d[0].clone(), idx.clone()],
        |g, x| g.cross_entropy_with_softmax_indices(x[0], x[1]).unwrap(),
    );
    let (b, _) = run(&shapes, &[d[0].clone(), onehot.clone()], |g, x| {
        g.cross_entropy_with_softmax(x[0], x[1]).unwrap()
    });
    assert_close("ce with indices", &a, &to64(&b), TOL);
    let (oh, _) = run(&[vec![9]], &[idx], |g, x| g.one_hot(x[0], 5).unwrap());
    assert_close("one_hot", &oh, &to64(&onehot), 0.0);
}

#[test]
fn loss_gradients() {
    let shapes = vec![vec![4, 3], vec![4, 3]];
    let mut d = rand_data(&shapes, 8);
    d[0].iter_mut().for_each(|v| *v *= 3.0);
    d[1].iter_mut().for_each(|v| *v = v.abs());
    check_grad(
        "bce",
        &shapes,
        &d,
        |g, x| g.binary_cross_entropy_with_logits(x[0], x[1]).unwrap(),
        |x| {
            x[0].iter()
                .zip(&x[1])
                .map(|(&z, &t)| z.max(0.0) - z * t + (-z.abs()).exp().ln_1p())
                .collect()
        },
        GTOL,
    );
    check_grad(
        "squared_error",
        &shapes,
        &d,
        |g, x| g.squared_error(x[0], x[1]).unwrap(),
        |x| {
            (0..4)
                .map(|r| {
                    (0..3)
                        .map(|j| (x[0][r * 3 + j] - x[1][r * 3 + j]).powi(2))
                        .sum()
                })
                .collect()
        },
        GTOL,
    );
    check_grad(
        "softplus",
        &shapes[..1],
        &d[..1],
        |g, x| g.softplus(x[0]).unwrap(),
        |x| {
            x[0].iter()
                .map(|&z| z.max(0.0) + (-z.abs()).exp().ln_1p())
                .collect()
        },
        GTOL,
    );
}

#[test]
fn bce_gradient_at_zero_logit_is_exact() {
    // A zero-initialised logistic regression starts at z = 0 exactly: d/dz = σ(0) − t.
    let (got, _) = {
        let ctx = ctx();
        let g = Graph::new();
        let z = g.input_with_shape("z", Shape::fixed(&[2])).unwrap();
        let t = g.input_with_shape("t", Shape::fixed(&[2])).unwrap();
        let l = g
            .reduce_sum(g.binary_cross_entropy_with_logits(z, t).unwrap(), &[])
            .unwrap();
        let gz = g.grad(l, &[z]).unwrap()[0];
        let mut ex = Executor::new(&ctx, &g).unwrap();
        (
            ex.eval(&[gz], &[(z, &[0.0, 0.0]), (t, &[1.0, 0.0])])
                .unwrap()
                .remove(0),
            (),
        )
    };
    assert_eq!(got, vec![-0.5, 0.5]);
}

#[test]
fn dropout_masks_scale_reproduce_and_vanish_in_eval() {
    let ctx = ctx();
    let g = Graph::with_seed(3);
    let x = g.input("x", &[1000]).unwrap();
    let y = g.dropout(x, 0.3).unwrap();
    let r = g.input("r", &[1000]).unwrap();
    let l = g.reduce_sum(g.mul(y, r).unwrap(), &[]).unwrap();
    let gx = g.grad(l, &[x]).unwrap()[0];
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let xd: Vec<f32> = (0..4000).map(|i| 1.0 + (i % 7) as f32).collect();
    let rd = rand_vec(4000, 4);
    let feed = [(x, &xd[..]), (r, &rd[..])];
    let a = ex.eval_training(&[y, gx], &feed).unwrap();
    let kept: Vec<bool> = a[0].iter().map(|&v| v != 0.0).collect();
    let frac = kept.iter().filter(|&&k| k).count() as f64 / 4000.0;
    assert!((frac - 0.7).abs() < 0.03, "kept fraction {frac}");
    for i in 0..4000 {
        let scale = if kept[i] { 1.0 / 0.7 } else { 0.0 };
        assert!((a[0][i] - xd[i] * scale).abs() < 1e-5, "element {i}");
        assert!(
            (a[1][i] - rd[i] * scale).abs() < 1e-5,
            "the gradient uses the same mask ({i})"
        );
    }
    let b = ex.eval_training(&[y], &feed).unwrap();
    assert_ne!(a[0], b[0], "each step draws a new mask");
    assert_eq!(
        ex.eval(&[y], &feed).unwrap()[0],
        xd,
        "identity in evaluation"
    );
    // A fresh executor on the same graph replays the same masks step by step.
    let mut ex2 = Executor::new(&ctx, &g).unwrap();
    assert_eq!(ex2.eval_training(&[y], &feed).unwrap()[0], a[0]);
}

fn bn_ref(x: &[f64], dims: [usize; 4], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, w] = dims;
    let cnt = (n * h * w) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for i in 0..x.len() {
        mean[(i / (h * w)) % c] += x[i] / cnt;
    }
    for i in 0..x.len() {
        let ch = (i / (h * w)) % c;
        var[ch] += (x[i] - mean[ch]).powi(2) / cnt;
    }
    let y = (0..x.len())
        .map(|i| {
            let ch = (i / (h * w)) % c;
            (x[i] - mean[ch]) / (var[ch] + eps).sqrt()
        })
        .collect();
    (y, mean, var)
}

#[test]
fn batch_norm_training_and_running_statistics() {
    let ctx = ctx();
    let g = Graph::new();
    let dims = [3usize, 2, 4, 5];
    let x = g.input("x", &dims[1..]).unwrap();
    let y = g.batch_norm("bn", x, 1, 0.1, 1e-5).unwrap();
    let loss = g.reduce_sum(y, &[]).unwrap();
    let mut t = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Sgd::new(0.0)).unwrap();
    let xd: Vec<f32> = rand_vec(120, 9)
        .iter()
        .enumerate()
        .map(|(i, v)| v * 3.0 + (i % 40 / 20) as f32)
        .collect();
    let (want, mean, var) = bn_ref(&to64(&xd), dims, 1e-5);
    let got = t
        .executor()
        .eval_training(&[y], &[(x, &xd)])
        .unwrap()
        .remove(0);
    assert_close("batch norm (training)", &got, &want, 1e-4);
    // One training step moves the running averages by momentum 0.1 (unbiased variance).
    t.train_minibatch(&[(x, &xd)], false).unwrap();
    let rm = t
        .executor()
        .parameter(g.find("bn.running_mean").unwrap())
        .unwrap();
    let rv = t
        .executor()
        .parameter(g.find("bn.running_var").unwrap())
        .unwrap();
    let cnt = 60.0;
    assert_close(
        "running mean",
        &rm,
        &mean.iter().map(|m| 0.1 * m).collect::<Vec<_>>(),
        1e-5,
    );
    assert_close(
        "running var",
        &rv,
        &var.iter()
            .map(|v| 0.9 + 0.1 * v * cnt / (cnt - 1.0))
            .collect::<Vec<_>>(),
        1e-5,
    );
    // Evaluation normalises with the running statistics.
    let got = t.eval(&[y], &[(x, &xd)]).unwrap().remove(0);
    let want: Vec<f64> = xd
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / 20) % 2;
            (v as f64 - rm[ch] as f64) / (rv[ch] as f64 + 1e-5).sqrt()
        })
        .collect();
    assert_close("batch norm (evaluation)", &got, &want, 1e-4);
}

#[test]
fn batch_norm_gradients() {
    let dims = [3usize, 2, 2, 3];
    check_grad(
        "batch norm",
        &[dims.to_vec()],
        &rand_data(&[dims.to_vec()], 10),
        |g, x| g.batch_norm("bn", x[0], 1, 0.1, 1e-5).unwrap(),
        |x| bn_ref(&x[0], dims, 1e-5).0,
        GTOL,
    );
}

/// f64 reference of `act(x + b)` with b along `axis` of `dims`.
fn bias_act_ref(
    x: &[f64],
    dims: &[usize],
    b: &[f64],
    axis: usize,
    act: Option<UnaryOp>,
) -> Vec<f64> {
    let inner: usize = dims[axis + 1..].iter().product();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let z = v + b[(i / inner) % dims[axis]];
            match act {
                None => z,
                Some(UnaryOp::Relu) => z.max(0.0),
                Some(UnaryOp::Sigmoid) => 1.0 / (1.0 + (-z).exp()),
                Some(_) => z.tanh(),
            }
        })
        .collect()
}

/// Odd shapes, each with its channel axis.
fn bias_cases() -> Vec<(Vec<usize>, usize)> {
    vec![
        (vec![7, 13], 1),
        (vec![3, 5, 7, 9], 1),
        (vec![5, 3, 11], 0),
        (vec![2, 3, 67], 2),
        (vec![1, 1], 1),
    ]
}

const FUSED: [Option<UnaryOp>; 4] = [
    None,
    Some(UnaryOp::Relu),
    Some(UnaryOp::Sigmoid),
    Some(UnaryOp::Tanh),
];

#[test]
fn bias_act_and_channel_sum_match_reference() {
    for (dims, axis) in bias_cases() {
        let shapes = vec![dims.clone(), vec![dims[axis]]];
        let d = rand_data(&shapes, 21);
        let (x, b) = (to64(&d[0]), to64(&d[1]));
        for act in FUSED {
            let (got, shape) = run(&shapes, &d, |g, v| {
                g.bias_act(v[0], v[1], axis as isize, act).unwrap()
            });
            assert_eq!(shape, Shape::fixed(&dims));
            let want = bias_act_ref(&x, &dims, &b, axis, act);
            assert_close(
                &format!("bias_act {dims:?} axis {axis} {act:?}"),
                &got,
                &want,
                TOL,
            );
        }
        let (got, shape) = run(&shapes[..1], &d[..1], |g, v| {
            g.channel_sum(v[0], axis as isize).unwrap()
        });
        assert_eq!(shape, Shape::fixed(&[dims[axis]]));
        let inner: usize = dims[axis + 1..].iter().product();
        let mut want = vec![0.0; dims[axis]];
        for (i, v) in x.iter().enumerate() {
            want[(i / inner) % dims[axis]] += v;
        }
        assert_close(
            &format!("channel_sum {dims:?} axis {axis}"),
            &got,
            &want,
            TOL,
        );
    }
}

#[test]
fn bias_act_and_channel_sum_gradients() {
    for (dims, axis) in bias_cases().into_iter().take(4) {
        let shapes = vec![dims.clone(), vec![dims[axis]]];
        let mut d = rand_data(&shapes, 22);
        // Keep x + b away from relu's kink so finite differences are valid.
        let inner: usize = dims[axis + 1..].iter().product();
        for i in 0..d[0].len() {
            let z = d[0][i] + d[1][(i / inner) % dims[axis]];
            if z.abs() < 0.05 {
                d[0][i] += 0.1;
            }
        }
        for act in FUSED {
            let dims2 = dims.clone();
            check_grad(
                &format!("bias_act {dims:?} axis {axis} {act:?}"),
                &shapes,
                &d,
                |g, v| g.bias_act(v[0], v[1], axis as isize, act).unwrap(),
                |v| bias_act_ref(&v[0], &dims2, &v[1], axis, act),
                GTOL,
            );
        }
        let dims2 = dims.clone();
        check_grad(
            &format!("channel_sum {dims:?} axis {axis}"),
            &shapes[..1],
            &d[..1],
            |g, v| g.channel_sum(v[0], axis as isize).unwrap(),
            |v| {
                let mut s = vec![0.0; dims2[axis]];
                for (i, x) in v[0].iter().enumerate() {
                    s[(i / inner) % dims2[axis]] += x;
                }
                s
            },
            GTOL,
        );
    }
}

#[test]
fn bias_and_activation_fold_into_the_matmul_epilogue() {
    // act(x·W + b) (bias per column) and act(W·colsᵀ + b) per batch item (bias per row, the
    // convolution pattern): the product's kernel applies both, with few and many rows.
    let cases: Vec<(&str, Vec<Vec<usize>>)> = vec![
        ("columns, 5 rows", vec![vec![5, 7], vec![7, 9], vec![9]]),
        ("columns, 65 rows", vec![vec![65, 7], vec![7, 9], vec![9]]),
        ("rows, batched", vec![vec![6, 11], vec![3, 13, 11], vec![6]]),
        (
            "rows, batched, 50 rows",
            vec![vec![50, 11], vec![2, 13, 11], vec![50]],
        ),
    ];
    for (name, shapes) in cases {
        let rows = shapes[1].len() == 3;
        let build = |g: &Graph, v: &[NodeId], act| {
            if rows {
                // Viewed as an image, as convolution does.
                let y = g.matmul_t(v[0], v[1], false, true).unwrap();
                let s = g.shape(y).resolve(1);
                let y = g.reshape(y, Shape::fixed(&[s[0], s[1], s[2], 1])).unwrap();
                g.bias_act(y, v[2], 1, act).unwrap()
            } else {
                g.bias_act(g.matmul(v[0], v[1]).unwrap(), v[2], -1, act)
                    .unwrap()
            }
        };
        let reference = |v: &[Vec<f64>], act| {
            let (s0, s1) = (&shapes[0], &shapes[1]);
            let y = matmul_ref(&v[0], s0, &v[1], s1, false, rows);
            let dims = if rows {
                vec![s1[0], s0[0], s1[1]]
            } else {
                vec![s0[0], s1[1]]
            };
            bias_act_ref(&y, &dims, &v[2], 1, act)
        };
        let mut d = rand_data(&shapes, 31);
        d[2].iter_mut().for_each(|v| *v *= 0.1);
        for act in FUSED {
            let (got, _) = run(&shapes, &d, |g, v| build(g, v, act));
            let want = reference(&d.iter().map(|x| to64(x)).collect::<Vec<_>>(), act);
            assert_close(&format!("{name} {act:?}"), &got, &want, TOL);
            // Gradients on the small cases; relu's kinks are left to the other activations.
            if shapes[0][0] >= 48 || act == Some(UnaryOp::Relu) || act == Some(UnaryOp::Sigmoid) {
                continue;
            }
            check_grad(
                &format!("{name} {act:?} gradient"),
                &shapes,
                &d,
                |g, v| build(g, v, act),
                |v| reference(v, act),
                GTOL,
            );
        }
        // The fused plan has no separate bias dispatch.
        let ctx = ctx();
        let g = Graph::new();
        let v = fixed_inputs(&g, &shapes);
        let out = build(&g, &v, Some(UnaryOp::Tanh));
        let mut ex = Executor::new(&ctx, &g).unwrap();
        let feed: Vec<(NodeId, &[f32])> = v.iter().zip(&d).map(|(&x, d)| (x, &d[..])).collect();
        let plan = ex.plan_summary(&[out], &feed, false).unwrap();
        assert_eq!(plan.count_entry("bias_act"), 0, "{name}:\n{plan}");
        assert_eq!(
            plan.count_fused(Fused::Activation(Activation::Tanh)),
            1,
            "{name}:\n{plan}"
        );
    }
}

/// CNTK's Stabilizer: the identity at its initial β, `x · softplus(4β)/4` after, with the
/// gradients of x (finite differences) and of β (its closed form Σ r·x·σ(4β)).
#[test]
fn stabilizer_starts_as_the_identity_and_learns_its_gain() {
    use wgrad::nn::{Layer, Stabilizer};
    let dims = [3usize, 7];
    let x = rand_vec(21, 41);
    let (at_init, _) = run(&[dims.to_vec()], std::slice::from_ref(&x), |g, v| {
        Stabilizer::default().build(g, "st", v[0]).unwrap()
    });
    assert_close("stabilizer at init", &at_init, &to64(&x), 1e-6);
    let softplus = |v: f64| (1.0 + v.exp()).ln();
    let beta0 = (4f64.exp() - 1.0).ln() / 4.0;
    check_grad(
        "stabilizer dx",
        &[dims.to_vec()],
        std::slice::from_ref(&x),
        |g, v| Stabilizer::default().build(g, "st", v[0]).unwrap(),
        |v| {
            v[0].iter()
                .map(|a| a * softplus(4.0 * beta0) / 4.0)
                .collect()
        },
        GTOL,
    );
    let g = Graph::new();
    let xin = g.input("x", &[7]).unwrap();
    let y = Stabilizer::default().build(&g, "st", xin).unwrap();
    let r = rand_vec(21, 42);
    let rin = g.input("r", &[7]).unwrap();
    let loss = g.reduce_sum(g.mul(y, rin).unwrap(), &[]).unwrap();
    let beta = g.find("st.beta").unwrap();
    let dbeta = g.grad(loss, &[beta]).unwrap()[0];
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let got = ex
        .eval(&[dbeta], &[(xin, &x), (rin, &r)])
        .unwrap()
        .remove(0);
    let sig = 1.0 / (1.0 + (-4.0 * beta0).exp());
    let want: f64 = x.iter().zip(&r).map(|(a, b)| (a * b) as f64 * sig).sum();
    assert_close("stabilizer dβ", &got, &[want], 1e-5);
    let bad = Stabilizer { steepness: 0.0 }
        .build(&g, "st2", xin)
        .unwrap_err();
    assert!(bad.to_string().contains("st2"), "{bad}");
}
