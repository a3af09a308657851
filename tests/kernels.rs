//! Every kernel against a plain-Rust f64 reference, on seeded random inputs with odd shapes.
//! The context poisons outputs with NaN first, so an unwritten element fails.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::{Executor, Fill, Graph, NodeId, OperandTextures, ReduceOp, Shape, Tensor};

const TOL: f64 = 1e-4;

/// Evaluates `build` on fixed-shape inputs and returns the output.
fn run(
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
) -> Vec<f32> {
    run_on(&ctx(), shapes, data, build)
}

/// [`run`] on a given context.
fn run_on(
    ctx: &wgrad::Context,
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
) -> Vec<f32> {
    let g = Graph::new();
    let xs: Vec<NodeId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            g.input_with_shape(&format!("x{i}"), Shape::fixed(s))
                .unwrap()
        })
        .collect();
    let out = build(&g, &xs);
    let mut ex = Executor::new(ctx, &g).unwrap();
    let feed: Vec<(NodeId, &[f32])> = xs.iter().zip(data).map(|(&x, d)| (x, &d[..])).collect();
    ex.eval(&[out], &feed).unwrap().remove(0)
}

fn data_for(shapes: &[Vec<usize>], seed: u64) -> Vec<Vec<f32>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand_vec(s.iter().product(), seed + i as u64))
        .collect()
}

/// Contexts for every matmul kernel, made once: on CPU adapters the texture kernel wherever
/// the operands fit in textures, the storage-buffer subgroup kernel, and without subgroups
/// (the blocked kernel).
fn matmul_contexts() -> &'static [wgrad::Context; 3] {
    static CTX: std::sync::OnceLock<[wgrad::Context; 3]> = std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        [
            ctx_with_textures(OperandTextures::Always),
            ctx_with_textures(OperandTextures::Never),
            ctx_without_subgroups(),
        ]
    })
}

fn check_matmul(
    b: Option<usize>,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    b_batched: bool,
) {
    let sa = {
        let mut s = if ta { vec![k, m] } else { vec![m, k] };
        if let Some(b) = b {
            s.insert(0, b);
        }
        s
    };
    let sb = {
        let mut s = if tb { vec![n, k] } else { vec![k, n] };
        if let (Some(b), true) = (b, b_batched) {
            s.insert(0, b);
        }
        s
    };
    let shapes = vec![sa.clone(), sb.clone()];
    let data = data_for(&shapes, (m * 31 + k * 7 + n) as u64);
    let want = matmul_ref(&to64(&data[0]), &sa, &to64(&data[1]), &sb, ta, tb);
    for (ctx, kernels) in
        matmul_contexts()
            .iter()
            .zip(["textures", "without textures", "without subgroups"])
    {
        let got = run_on(ctx, &shapes, &data, |g, x| {
            g.matmul_t(x[0], x[1], ta, tb).unwrap()
        });
        assert_close(
            &format!(
                "matmul {sa:?}{} · {sb:?}{} ({kernels})",
                if ta { "ᵀ" } else { "" },
                if tb { "ᵀ" } else { "" }
            ),
            &got,
            &want,
            TOL,
        );
    }
}

/// Shapes for the texture kernel (CPU adapters): operands whose lengths are whole texels,
/// with A read a texel per row (K % 4 == 0) or a float at a time (transposed, or K % 4 ≠ 0,
/// the last k-steps masked), B a texel per row (N % 4 == 0), a texel per column (transposed,
/// K % 4 == 0) or a float at a time, 8 columns per lane (N ≥ 512), and batches whose strides
/// are not whole texels.
#[test]
fn matmul_texture_kernel_edges() {
    for (m, k, n) in [(20, 12, 37), (6, 10, 14), (70, 8, 520), (64, 36, 36)] {
        for ta in [false, true] {
            for tb in [false, true] {
                check_matmul(None, m, k, n, ta, tb, false);
            }
        }
    }
    for ta in [false, true] {
        for tb in [false, true] {
            check_matmul(Some(4), 3, 3, 5, ta, tb, true);
            check_matmul(Some(3), 6, 10, 14, ta, tb, false);
        }
    }
}

/// The plan computing op(A)·op(B) for these shapes.
fn matmul_plan(
    ctx: &wgrad::Context,
    sa: &[usize],
    sb: &[usize],
    ta: bool,
    tb: bool,
) -> wgrad::PlanSummary {
    let g = Graph::new();
    let a = g.input_with_shape("a", Shape::fixed(sa)).unwrap();
    let b = g.input_with_shape("b", Shape::fixed(sb)).unwrap();
    let y = g.matmul_t(a, b, ta, tb).unwrap();
    let mut ex = Executor::new(ctx, &g).unwrap();
    let (da, db) = (
        rand_vec(sa.iter().product(), 1),
        rand_vec(sb.iter().product(), 2),
    );
    let feed: Vec<(NodeId, &[f32])> = vec![(a, &da[..]), (b, &db[..])];
    ex.plan_summary(&[y], &feed, false).unwrap()
}

/// On CPU adapters with subgroups, products read their operands from textures by default
/// where B is read a texel per row or column, and from storage buffers where B would be read
/// a float at a time or an operand is not a whole number of texels; with `Always`, wherever
/// the operands fit; with `Never`, not at all. Other adapters never use textures.
#[test]
fn matmul_reads_operands_from_textures_on_cpu_adapters() {
    let [always, never, _] = matmul_contexts();
    let auto = ctx();
    let texture = |p: &wgrad::PlanSummary| p.count_shader(wgrad::Shader::MatmulTexture) == 1;
    let storage = |p: &wgrad::PlanSummary| p.count_shader(wgrad::Shader::MatmulSubgroup) == 1;
    let texels = matmul_plan(&auto, &[20, 12], &[12, 36], false, false);
    let texels_t = matmul_plan(&auto, &[12, 20], &[36, 12], true, true);
    let floats = matmul_plan(&auto, &[20, 12], &[12, 37], false, false);
    let odd = matmul_plan(&auto, &[13, 6], &[6, 9], false, false);
    if auto.is_cpu() && auto.subgroup_size().is_some() {
        assert!(
            texture(&texels) && texture(&texels_t),
            "{texels}\n{texels_t}"
        );
        assert!(storage(&floats) && storage(&odd), "{floats}\n{odd}");
        let forced = matmul_plan(always, &[20, 12], &[12, 37], false, false);
        assert!(texture(&forced), "{forced}");
        let without = matmul_plan(never, &[20, 12], &[12, 36], false, false);
        assert!(storage(&without), "{without}");
    } else {
        assert!(!texture(&texels) && !texture(&odd), "{texels}\n{odd}");
    }
}

#[test]
fn matmul_odd_shapes_every_transpose() {
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (13, 6, 9),
        (20, 9, 37),
        (33, 65, 17),
        (129, 257, 95),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                check_matmul(None, m, k, n, ta, tb, false);
            }
        }
    }
}

/// Shapes whose contiguous axes are multiples of 4 take the register-blocked kernel; these
/// cover partial 8×8 blocks, a K that is not a multiple of 4 (transposed A, plain B), a single
/// row or column block, and batches.
#[test]
fn matmul_blocked_kernel_edges() {
    for (m, k, n) in [(36, 68, 44), (4, 4, 4), (129, 260, 92), (12, 20, 100)] {
        for ta in [false, true] {
            for tb in [false, true] {
                if m % 4 == 0 || !ta {
                    check_matmul(None, m, k, n, ta, tb, false);
                }
            }
        }
    }
    check_matmul(None, 36, 33, 20, true, false, false);
    check_matmul(None, 64, 7, 8, true, false, false);
    for ta in [false, true] {
        for tb in [false, true] {
            check_matmul(Some(3), 20, 12, 28, ta, tb, true);
            check_matmul(Some(2), 44, 16, 12, ta, tb, false);
        }
    }
}

#[test]
fn matmul_batched_and_shared_operand() {
    for ta in [false, true] {
        for tb in [false, true] {
            check_matmul(Some(3), 33, 17, 41, ta, tb, true);
            check_matmul(Some(5), 9, 13, 7, ta, tb, false);
        }
    }
}

#[test]
fn matmul_summed_over_the_batch() {
    // Σ_z op(P_z)·op(Q_z), on both kernels: a small M (blocked kernel) and M ≥ 48 (the
    // subgroup kernel on CPU adapters), every transpose.
    for (z, m, k, n) in [(3, 9, 13, 7), (4, 65, 17, 33)] {
        for tp in [false, true] {
            for tq in [false, true] {
                let sp = if tp { vec![z, k, m] } else { vec![z, m, k] };
                let sq = if tq { vec![z, n, k] } else { vec![z, k, n] };
                let shapes = vec![sp.clone(), sq.clone()];
                let data = data_for(&shapes, (z * 100 + m) as u64);
                let per_item = matmul_ref(&to64(&data[0]), &sp, &to64(&data[1]), &sq, tp, tq);
                let mut want = vec![0.0; m * n];
                for (i, v) in per_item.iter().enumerate() {
                    want[i % (m * n)] += v;
                }
                for ctx in matmul_contexts() {
                    let got = run_on(ctx, &shapes, &data, |g, x| {
                        g.matmul_sum_batch_t(x[0], x[1], tp, tq).unwrap()
                    });
                    assert_close(
                        &format!("Σ_z matmul {sp:?} {tp} {sq:?} {tq}"),
                        &got,
                        &want,
                        TOL,
                    );
                }
            }
        }
    }
}

#[test]
fn unary_ops() {
    let s = vec![vec![7, 37]];
    let mut d = data_for(&s, 1);
    d[0].iter_mut().for_each(|v| *v *= 4.0);
    let pos: Vec<Vec<f32>> = vec![d[0].iter().map(|v| v.abs() + 0.1).collect()];
    type F = fn(f64) -> f64;
    let cases: Vec<(&str, wgrad::UnaryOp, F, bool)> = vec![
        ("neg", wgrad::UnaryOp::Neg, |x| -x, false),
        ("exp", wgrad::UnaryOp::Exp, f64::exp, false),
        ("log", wgrad::UnaryOp::Log, f64::ln, true),
        ("sqrt", wgrad::UnaryOp::Sqrt, f64::sqrt, true),
        ("abs", wgrad::UnaryOp::Abs, f64::abs, false),
        ("sign", wgrad::UnaryOp::Sign, f64::signum, false),
        (
            "sigmoid",
            wgrad::UnaryOp::Sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            false,
        ),
        ("tanh", wgrad::UnaryOp::Tanh, f64::tanh, false),
        ("relu", wgrad::UnaryOp::Relu, |x| x.max(0.0), false),
        ("scale", wgrad::UnaryOp::Scale(-2.5), |x| -2.5 * x, false),
    ];
    for (name, op, f, positive) in cases {
        let input = if positive { &pos } else { &d };
        let got = run(&s, input, |g, x| g.unary(op, x[0]).unwrap());
        let want: Vec<f64> = input[0].iter().map(|&v| f(v as f64)).collect();
        assert_close(name, &got, &want, TOL);
    }
}

#[test]
fn unary_extremes_stay_finite() {
    let s = vec![vec![4]];
    let d = vec![vec![-200.0f32, -30.0, 30.0, 200.0]];
    let sig = run(&s, &d, |g, x| g.sigmoid(x[0]).unwrap());
    let want: Vec<f64> = d[0]
        .iter()
        .map(|&x| 1.0 / (1.0 + (-(x as f64)).exp()))
        .collect();
    assert_close("sigmoid extremes", &sig, &want, TOL);
    let th = run(&s, &d, |g, x| g.tanh(x[0]).unwrap());
    assert_eq!(th, vec![-1.0, -1.0, 1.0, 1.0]);
}

#[test]
fn binary_ops_broadcast_along_each_axis() {
    type F = fn(f64, f64) -> f64;
    let ops: Vec<(wgrad::BinaryOp, F)> = vec![
        (wgrad::BinaryOp::Add, |a, b| a + b),
        (wgrad::BinaryOp::Sub, |a, b| a - b),
        (wgrad::BinaryOp::Mul, |a, b| a * b),
        (wgrad::BinaryOp::Div, |a, b| a / b),
        (wgrad::BinaryOp::Max, f64::max),
        (wgrad::BinaryOp::Min, f64::min),
        (wgrad::BinaryOp::Gt, |a, b| (a > b) as u8 as f64),
        (wgrad::BinaryOp::Ge, |a, b| (a >= b) as u8 as f64),
        (wgrad::BinaryOp::Lt, |a, b| (a < b) as u8 as f64),
        (wgrad::BinaryOp::Le, |a, b| (a <= b) as u8 as f64),
        (wgrad::BinaryOp::Eq, |a, b| (a == b) as u8 as f64),
    ];
    let pairs: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![3, 5, 7], vec![3, 5, 7]),
        (vec![3, 5, 7], vec![1, 5, 7]),
        (vec![3, 5, 7], vec![3, 1, 7]),
        (vec![3, 5, 7], vec![3, 5, 1]),
        (vec![3, 5, 7], vec![7]),
        (vec![5, 1], vec![1, 7]),
        (vec![1], vec![2, 3, 5]),
        (vec![2, 1, 3, 1, 2], vec![5, 1, 4, 1]),
    ];
    for (op, f) in ops {
        for (sa, sb) in &pairs {
            let shapes = vec![sa.clone(), sb.clone()];
            let mut data = data_for(&shapes, 5);
            // Keep divisors away from zero and make some elements equal for the comparisons.
            data[1]
                .iter_mut()
                .for_each(|v| *v = if v.abs() < 0.1 { 0.5 } else { *v });
            data[0][0] = data[1][0];
            let got = run(&shapes, &data, |g, x| g.binary(op, x[0], x[1]).unwrap());
            let want = binary_ref(&to64(&data[0]), sa, &to64(&data[1]), sb, f);
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &got, &want, TOL);
        }
    }
}

#[test]
fn gradient_helper_ops() {
    let s = vec![vec![5, 9], vec![5, 9]];
    let d = data_for(&s, 8);
    type F = fn(f64, f64) -> f64;
    let cases: Vec<(wgrad::BinaryOp, F)> = vec![
        (
            wgrad::BinaryOp::ReluGrad,
            |x, g| if x > 0.0 { g } else { 0.0 },
        ),
        (wgrad::BinaryOp::SigmoidGrad, |y, g| g * y * (1.0 - y)),
        (wgrad::BinaryOp::TanhGrad, |y, g| g * (1.0 - y * y)),
    ];
    for (op, f) in cases {
        let got = run(&s, &d, |g, x| g.binary(op, x[0], x[1]).unwrap());
        let want = binary_ref(&to64(&d[0]), &s[0], &to64(&d[1]), &s[1], f);
        assert_close(&format!("{op:?}"), &got, &want, TOL);
    }
}

#[test]
fn reductions_over_each_axis_and_all_axes() {
    let dims = vec![3usize, 5, 7];
    let d = data_for(std::slice::from_ref(&dims), 11);
    let x = to64(&d[0]);
    for (name, op) in [
        ("sum", wgrad::ReduceOp::Sum),
        ("mean", wgrad::ReduceOp::Mean),
        ("max", wgrad::ReduceOp::Max),
    ] {
        for axis in 0..3 {
            let got = run(std::slice::from_ref(&dims), &d, |g, xs| {
                g.reduce(op, xs[0], &[axis as isize], true).unwrap()
            });
            assert_close(
                &format!("{name} axis {axis}"),
                &got,
                &reduce_ref(&x, &dims, axis, name),
                TOL,
            );
        }
        // All axes: reduce the reference one axis at a time.
        let got = run(std::slice::from_ref(&dims), &d, |g, xs| {
            g.reduce(op, xs[0], &[], false).unwrap()
        });
        let mut r = x.clone();
        let mut rd = dims.clone();
        for axis in 0..3 {
            r = reduce_ref(&r, &rd, axis, name);
            rd[axis] = 1;
        }
        assert_eq!(got.len(), 1);
        assert_close(&format!("{name} all axes"), &got, &r, TOL);
        // Two axes at once, axes removed.
        let got = run(std::slice::from_ref(&dims), &d, |g, xs| {
            g.reduce(op, xs[0], &[0, -1], false).unwrap()
        });
        let r = reduce_ref(&reduce_ref(&x, &dims, 0, name), &[1, 5, 7], 2, name);
        assert_close(&format!("{name} axes 0,2"), &got, &r, TOL);
    }
}

#[test]
fn reduce_long_axis() {
    // Long axes with few outputs take the one-workgroup-per-output kernel; short ones the
    // one-invocation-per-output kernel. Both, every op, with strides inside and outside.
    for (dims, axis) in [
        (vec![2usize, 3001], 1),
        (vec![3, 1001, 2], 1),
        (vec![700, 3], 0),
        (vec![5, 300], 1),
    ] {
        let d = data_for(std::slice::from_ref(&dims), 12);
        for (op, name) in [
            (ReduceOp::Sum, "sum"),
            (ReduceOp::Mean, "mean"),
            (ReduceOp::Max, "max"),
        ] {
            let got = run(std::slice::from_ref(&dims), &d, |g, xs| {
                g.reduce_axis(op, xs[0], axis).unwrap()
            });
            assert_close(
                &format!("{name} over axis {axis} of {dims:?}"),
                &got,
                &reduce_ref(&to64(&d[0]), &dims, axis, name),
                TOL,
            );
        }
    }
}

/// Softmax and log-softmax of large logits (the stable form matters) along `axis`.
fn check_softmax(dims: &[usize], axis: usize, seed: u64) {
    let dims = dims.to_vec();
    let mut d = data_for(std::slice::from_ref(&dims), seed);
    d[0].iter_mut().for_each(|v| *v *= 30.0);
    for log in [false, true] {
        let got = run(std::slice::from_ref(&dims), &d, |g, xs| {
            if log {
                g.log_softmax(xs[0], axis as isize).unwrap()
            } else {
                g.softmax(xs[0], axis as isize).unwrap()
            }
        });
        let want = softmax_ref(&to64(&d[0]), &dims, axis, log);
        let what = format!("softmax log={log} {dims:?} axis {axis}");
        assert_close(&what, &got, &want, TOL);
    }
}

#[test]
fn softmax_long_rows() {
    // One workgroup per row: the maximum and the sum are combined across lanes.
    check_softmax(&[3, 1000], 1, 14);
    check_softmax(&[300, 2], 0, 14);
    check_softmax(&[2, 257, 3], 1, 14);
}

#[test]
fn softmax_and_log_softmax_each_axis() {
    for axis in 0..3 {
        check_softmax(&[4, 6, 5], axis, 13);
    }
}

fn one_hot(rows: usize, classes: usize, seed: u64) -> Vec<f32> {
    let idx = rand_vec(rows, seed);
    let mut t = vec![0.0; rows * classes];
    for (r, v) in idx.iter().enumerate() {
        let c = (((v + 1.0) / 2.0) * classes as f32) as usize % classes;
        t[r * classes + c] = 1.0;
    }
    t
}

#[test]
fn cross_entropy_with_softmax_and_classification_error() {
    let (rows, classes) = (37, 11);
    let mut z = rand_vec(rows * classes, 21);
    z.iter_mut().for_each(|v| *v *= 50.0);
    let t = one_hot(rows, classes, 22);
    let shapes = vec![vec![rows, classes], vec![rows, classes]];
    let data = vec![z.clone(), t.clone()];
    let ce = run(&shapes, &data, |g, x| {
        g.cross_entropy_with_softmax(x[0], x[1]).unwrap()
    });
    let ls = softmax_ref(&to64(&z), &[rows, classes], 1, true);
    let want: Vec<f64> = (0..rows)
        .map(|r| {
            -(0..classes)
                .map(|j| t[r * classes + j] as f64 * ls[r * classes + j])
                .sum::<f64>()
        })
        .collect();
    assert_close("cross_entropy_with_softmax", &ce, &want, TOL);

    let err = run(&shapes, &data, |g, x| {
        g.classification_error(x[0], x[1]).unwrap()
    });
    let want: Vec<f64> = (0..rows)
        .map(|r| {
            let am = |v: &[f32]| {
                (0..classes).fold(0, |b, j| {
                    if v[r * classes + j] > v[r * classes + b] {
                        j
                    } else {
                        b
                    }
                })
            };
            (am(&z) != am(&t)) as u8 as f64
        })
        .collect();
    assert_close("classification_error", &err, &want, 0.0);
    assert!(
        want.contains(&0.0) && want.contains(&1.0),
        "both outcomes are exercised"
    );

    // Asked for together (a trainer's loss and metric), one dispatch computes both.
    let ctx = ctx();
    let g = Graph::new();
    let zi = g.input_with_shape("z", Shape::fixed(&shapes[0])).unwrap();
    let ti = g.input_with_shape("t", Shape::fixed(&shapes[1])).unwrap();
    let both = [
        g.cross_entropy_with_softmax(zi, ti).unwrap(),
        g.classification_error(zi, ti).unwrap(),
    ];
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let feed = [(zi, &z[..]), (ti, &t[..])];
    let got = ex.eval(&both, &feed).unwrap();
    assert_eq!(
        (&got[0], &got[1]),
        (&ce, &err),
        "loss and error in one pass"
    );
    let plan = ex.plan_summary(&both, &feed, false).unwrap();
    assert_eq!(plan.count_entry("ce_forward_error"), 1, "{plan}");
    assert_eq!(
        plan.count_fused(wgrad::Fused::ClassificationError),
        1,
        "{plan}"
    );
    assert_eq!(plan.count_entry("class_error"), 0, "{plan}");
}

#[test]
fn fills_are_seeded_and_have_the_right_moments() {
    let ctx = ctx();
    let n = 100_003;
    let u = Tensor::filled(
        &ctx,
        &[n],
        Fill::Uniform {
            low: -2.0,
            high: 3.0,
            seed: 7,
        },
    )
    .unwrap()
    .to_vec(&ctx)
    .unwrap();
    let u2 = Tensor::filled(
        &ctx,
        &[n],
        Fill::Uniform {
            low: -2.0,
            high: 3.0,
            seed: 7,
        },
    )
    .unwrap()
    .to_vec(&ctx)
    .unwrap();
    let u3 = Tensor::filled(
        &ctx,
        &[n],
        Fill::Uniform {
            low: -2.0,
            high: 3.0,
            seed: 8,
        },
    )
    .unwrap()
    .to_vec(&ctx)
    .unwrap();
    assert_eq!(u, u2, "same seed, same numbers");
    assert_ne!(u, u3, "another seed, other numbers");
    assert!(u.iter().all(|&v| (-2.0..3.0).contains(&v)));
    let mean = u.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.02, "uniform mean {mean}");
    let z = Tensor::filled(
        &ctx,
        &[n],
        Fill::Normal {
            mean: 1.0,
            std: 2.0,
            seed: 3,
        },
    )
    .unwrap()
    .to_vec(&ctx)
    .unwrap();
    let m = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = z.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
    assert!(
        (m - 1.0).abs() < 0.03 && (var.sqrt() - 2.0).abs() < 0.03,
        "normal mean {m} std {}",
        var.sqrt()
    );
    let c = Tensor::ones(&ctx, &[5, 3]).unwrap().to_vec(&ctx).unwrap();
    assert_eq!(c, vec![1.0; 15]);
    let h = Tensor::from_slice(&ctx, &[1.0, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(h.to_vec(&ctx).unwrap(), vec![1.0, 2.0, 3.0]);
}
