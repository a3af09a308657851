//! Every op's gradient against central finite differences of its f64 reference.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::{BinaryOp, ReduceOp, Shape, UnaryOp};

const TOL: f64 = 2e-3;

fn data(shapes: &[Vec<usize>], seed: u64) -> Vec<Vec<f32>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand_vec(s.iter().product(), seed * 10 + i as u64))
        .collect()
}

#[test]
fn unary_gradients() {
    type F = fn(f64) -> f64;
    let cases: Vec<(UnaryOp, F, bool)> = vec![
        (UnaryOp::Neg, |x| -x, false),
        (UnaryOp::Exp, f64::exp, false),
        (UnaryOp::Log, f64::ln, true),
        (UnaryOp::Sqrt, f64::sqrt, true),
        (UnaryOp::Abs, f64::abs, false),
        (UnaryOp::Sigmoid, |x| 1.0 / (1.0 + (-x).exp()), false),
        (UnaryOp::Tanh, f64::tanh, false),
        (UnaryOp::Relu, |x| x.max(0.0), false),
        (UnaryOp::Scale(3.5), |x| 3.5 * x, false),
    ];
    let shapes = vec![vec![3, 7]];
    for (op, f, positive) in cases {
        let mut d = data(&shapes, 1);
        // Stay away from the kinks of abs and relu, and from 0 for log and sqrt.
        d[0].iter_mut().for_each(|v| {
            *v = if positive {
                v.abs() + 0.2
            } else if v.abs() < 0.05 {
                0.3
            } else {
                *v
            }
        });
        check_grad(
            &format!("{op:?}"),
            &shapes,
            &d,
            |g, x| g.unary(op, x[0]).unwrap(),
            |x| x[0].iter().map(|&v| f(v)).collect(),
            TOL,
        );
    }
}

#[test]
fn binary_gradients_with_broadcast_operands() {
    type F = fn(f64, f64) -> f64;
    let cases: Vec<(BinaryOp, F)> = vec![
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Max, f64::max),
        (BinaryOp::Min, f64::min),
    ];
    let pairs = vec![
        (vec![3, 5], vec![3, 5]),
        (vec![3, 5], vec![5]),
        (vec![3, 1], vec![1, 5]),
        (vec![1], vec![2, 3, 4]),
    ];
    for (op, f) in cases {
        for (sa, sb) in &pairs {
            let shapes = vec![sa.clone(), sb.clone()];
            let mut d = data(&shapes, 2);
            d[1].iter_mut()
                .for_each(|v| *v = v.signum() * (v.abs() + 0.3)); // no division by ~0
            d[0].iter_mut().for_each(|v| *v += 0.013); // no ties for max/min
            check_grad(
                &format!("{op:?} {sa:?} {sb:?}"),
                &shapes,
                &d,
                |g, x| g.binary(op, x[0], x[1]).unwrap(),
                |x| binary_ref(&x[0], sa, &x[1], sb, f),
                TOL,
            );
        }
    }
}

#[test]
fn value_used_twice_accumulates() {
    // y = x·x + exp(x) - x: x feeds four uses.
    let shapes = vec![vec![4, 3]];
    check_grad(
        "x*x + exp(x) - x",
        &shapes,
        &data(&shapes, 3),
        |g, x| {
            let sq = g.mul(x[0], x[0]).unwrap();
            g.sub(g.add(sq, g.exp(x[0]).unwrap()).unwrap(), x[0])
                .unwrap()
        },
        |x| x[0].iter().map(|&v| v * v + v.exp() - v).collect(),
        TOL,
    );
}

#[test]
fn matmul_gradients_every_transpose_and_batch() {
    for ta in [false, true] {
        for tb in [false, true] {
            for (sa, sb) in [
                ((3, 5, None), (5, 4, None)),
                ((3, 5, Some(2)), (5, 4, Some(2))),
                ((3, 5, Some(2)), (5, 4, None)),
                ((3, 5, None), (5, 4, Some(2))),
            ] {
                let mk = |(r, c, b): (usize, usize, Option<usize>), t: bool| {
                    let mut s = if t { vec![c, r] } else { vec![r, c] };
                    if let Some(b) = b {
                        s.insert(0, b);
                    }
                    s
                };
                let (a_shape, b_shape) = (mk(sa, ta), mk(sb, tb));
                let shapes = vec![a_shape.clone(), b_shape.clone()];
                check_grad(
                    &format!("matmul {a_shape:?} {ta} {b_shape:?} {tb}"),
                    &shapes,
                    &data(&shapes, 4),
                    |g, x| g.matmul_t(x[0], x[1], ta, tb).unwrap(),
                    |x| matmul_ref(&x[0], &a_shape, &x[1], &b_shape, ta, tb),
                    TOL,
                );
            }
        }
    }
}

#[test]
fn reduction_gradients() {
    let dims = vec![3usize, 4, 5];
    for (name, op) in [
        ("sum", ReduceOp::Sum),
        ("mean", ReduceOp::Mean),
        ("max", ReduceOp::Max),
    ] {
        for axis in 0..3 {
            check_grad(
                &format!("{name} axis {axis}"),
                std::slice::from_ref(&dims),
                &data(std::slice::from_ref(&dims), 5),
                |g, x| g.reduce(op, x[0], &[axis as isize], true).unwrap(),
                |x| reduce_ref(&x[0], &dims, axis, name),
                TOL,
            );
        }
    }
    check_grad(
        "mean of all",
        std::slice::from_ref(&dims),
        &data(std::slice::from_ref(&dims), 6),
        |g, x| g.reduce_mean(x[0], &[]).unwrap(),
        |x| vec![x[0].iter().sum::<f64>() / 60.0],
        TOL,
    );
}

#[test]
fn softmax_gradients() {
    let dims = vec![3usize, 5];
    for axis in 0..2 {
        for log in [false, true] {
            check_grad(
                &format!("softmax log={log} axis {axis}"),
                std::slice::from_ref(&dims),
                &data(std::slice::from_ref(&dims), 7),
                |g, x| {
                    if log {
                        g.log_softmax(x[0], axis as isize).unwrap()
                    } else {
                        g.softmax(x[0], axis as isize).unwrap()
                    }
                },
                |x| softmax_ref(&x[0], &dims, axis, log),
                TOL,
            );
        }
    }
}

#[test]
fn cross_entropy_gradients_for_scores_and_targets() {
    let shapes = vec![vec![4, 6], vec![4, 6]];
    let mut d = data(&shapes, 8);
    d[1].iter_mut().for_each(|v| *v = v.abs()); // soft targets
    check_grad(
        "cross_entropy_with_softmax",
        &shapes,
        &d,
        |g, x| g.cross_entropy_with_softmax(x[0], x[1]).unwrap(),
        |x| {
            let ls = softmax_ref(&x[0], &[4, 6], 1, true);
            (0..4)
                .map(|r| -(0..6).map(|j| x[1][r * 6 + j] * ls[r * 6 + j]).sum::<f64>())
                .collect()
        },
        TOL,
    );
}

#[test]
fn expand_and_reshape_gradients() {
    check_grad(
        "expand [3,1] -> [3,4]",
        &[vec![3, 1]],
        &data(&[vec![3, 1]], 9),
        |g, x| g.expand(x[0], Shape::fixed(&[2, 3, 4])).unwrap(),
        |x| (0..24).map(|i| x[0][(i / 4) % 3]).collect(),
        TOL,
    );
    check_grad(
        "reshape then mul",
        &[vec![2, 6], vec![3, 4]],
        &data(&[vec![2, 6], vec![3, 4]], 10),
        |g, x| {
            g.mul(g.reshape(x[0], Shape::fixed(&[3, 4])).unwrap(), x[1])
                .unwrap()
        },
        |x| x[0].iter().zip(&x[1]).map(|(a, b)| a * b).collect(),
        TOL,
    );
}

#[test]
fn composite_dense_layer() {
    // tanh(x·W + b) with b broadcast over rows: the pattern every layer uses.
    let shapes = vec![vec![5, 3], vec![3, 4], vec![4]];
    check_grad(
        "tanh(xW+b)",
        &shapes,
        &data(&shapes, 11),
        |g, x| {
            g.tanh(g.add(g.matmul(x[0], x[1]).unwrap(), x[2]).unwrap())
                .unwrap()
        },
        |x| {
            let xw = matmul_ref(&x[0], &[5, 3], &x[1], &[3, 4], false, false);
            binary_ref(&xw, &[5, 4], &x[2], &[4], |a, b| (a + b).tanh())
        },
        TOL,
    );
}

#[test]
fn permute_forward_and_gradient() {
    let dims = [2usize, 3, 4];
    let perm = [2usize, 0, 1];
    let reference = |x: &[f64]| -> Vec<f64> {
        let mut out = Vec::with_capacity(24);
        for k in 0..4 {
            for i in 0..2 {
                for j in 0..3 {
                    out.push(x[(i * 3 + j) * 4 + k]);
                }
            }
        }
        out
    };
    check_grad(
        "permute [2,0,1]",
        &[dims.to_vec()],
        &data(&[dims.to_vec()], 12),
        |g, x| g.permute(x[0], &perm).unwrap(),
        |x| reference(&x[0]),
        TOL,
    );
}

#[test]
fn shared_matrix_gradient_as_one_product() {
    // x: [batch 3, 5, 4] · w: [4, 2]: dW = Σ_z x_zᵀ g_z is computed as one product.
    let shapes = vec![vec![3, 5, 4], vec![4, 2]];
    check_grad(
        "batched x · shared w",
        &shapes,
        &data(&shapes, 13),
        |g, x| g.matmul(x[0], x[1]).unwrap(),
        |x| matmul_ref(&x[0], &[3, 5, 4], &x[1], &[4, 2], false, false),
        TOL,
    );
}

#[test]
fn cross_entropy_gradient_of_a_mean_or_sum_over_rows() {
    // The common loss: mean (or sum, or a scaled mean) of the per-row losses over a batch.
    // Its gradient reaches the cross-entropy kernel as one broadcast value, which the kernel
    // reads directly; checked against the closed form w · (softmax(z)·Σt − t).
    let (rows, classes) = (5, 7);
    let z = rand_vec(rows * classes, 31);
    let t: Vec<f32> = rand_vec(rows * classes, 32)
        .iter()
        .map(|v| v.abs())
        .collect();
    for (name, weight) in [
        ("mean", 1.0 / rows as f64),
        ("sum", 1.0),
        ("3·mean", 3.0 / rows as f64),
    ] {
        let ctx = ctx();
        let g = wgrad::Graph::new();
        let zi = g.input("z", &[classes]).unwrap();
        let ti = g.input("t", &[classes]).unwrap();
        let ce = g.cross_entropy_with_softmax(zi, ti).unwrap();
        let loss = match name {
            "mean" => g.reduce_mean(ce, &[]).unwrap(),
            "sum" => g.reduce_sum(ce, &[]).unwrap(),
            _ => g.scale(g.reduce_mean(ce, &[]).unwrap(), 3.0).unwrap(),
        };
        let dz = g.grad(loss, &[zi]).unwrap()[0];
        let mut ex = wgrad::Executor::new(&ctx, &g).unwrap();
        let got = ex
            .eval_training(&[dz], &[(zi, &z[..]), (ti, &t[..])])
            .unwrap()
            .remove(0);
        let sm = softmax_ref(&to64(&z), &[rows, classes], 1, false);
        let want: Vec<f64> = (0..rows * classes)
            .map(|i| {
                let r = i / classes;
                let tsum: f64 = (0..classes).map(|j| t[r * classes + j] as f64).sum();
                weight * (sm[i] * tsum - t[i] as f64)
            })
            .collect();
        assert_close(&format!("d {name}(ce)/dz"), &got, &want, 1e-4);
    }
}

#[test]
fn activation_gradients_fold_into_the_incoming_product() {
    // act(x·W1)·W2: the gradient reaching act is a product (g·W2ᵀ), whose kernel applies
    // act's derivative in its epilogue. Each activation, a small and a ≥ 48-row batch.
    for rows in [5usize, 50] {
        let shapes = vec![vec![rows, 6], vec![6, 7], vec![7, 3]];
        for (name, act) in [
            ("relu", UnaryOp::Relu),
            ("sigmoid", UnaryOp::Sigmoid),
            ("tanh", UnaryOp::Tanh),
        ] {
            let f = move |v: f64| match act {
                UnaryOp::Relu => v.max(0.0),
                UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                _ => v.tanh(),
            };
            let mut d = data(&shapes, 41);
            if act == UnaryOp::Relu {
                // Keep x·W1 away from relu's kink.
                let h = matmul_ref(
                    &to64(&d[0]),
                    &[rows, 6],
                    &to64(&d[1]),
                    &[6, 7],
                    false,
                    false,
                );
                if h.iter().any(|v| v.abs() < 1e-2) {
                    d[1].iter_mut().for_each(|v| *v += 0.013);
                }
            }
            check_grad(
                &format!("{name}(x·W1)·W2, {rows} rows"),
                &shapes,
                &d,
                |g, x| {
                    let h = g.unary(act, g.matmul(x[0], x[1]).unwrap()).unwrap();
                    g.matmul(h, x[2]).unwrap()
                },
                |x| {
                    let h: Vec<f64> = matmul_ref(&x[0], &[rows, 6], &x[1], &[6, 7], false, false)
                        .into_iter()
                        .map(f)
                        .collect();
                    matmul_ref(&h, &[rows, 7], &x[2], &[7, 3], false, false)
                },
                TOL,
            );
        }
    }
    // The plan has no separate activation-gradient dispatch.
    let ctx = ctx();
    let g = wgrad::Graph::new();
    let x = g.input("x", &[6]).unwrap();
    let w1 = g
        .parameter("w1", &[6, 7], wgrad::Init::GlorotUniform)
        .unwrap();
    let w2 = g
        .parameter("w2", &[7, 3], wgrad::Init::GlorotUniform)
        .unwrap();
    let out = g
        .matmul(g.relu(g.matmul(x, w1).unwrap()).unwrap(), w2)
        .unwrap();
    let dw1 = g.grad(g.reduce_sum(out, &[]).unwrap(), &[w1]).unwrap()[0];
    let mut ex = wgrad::Executor::new(&ctx, &g).unwrap();
    let xd = rand_vec(5 * 6, 43);
    let plan = ex.plan_summary(&[dw1], &[(x, &xd)], false).unwrap();
    let relu_grad = wgrad::Fused::ActivationGrad(wgrad::Activation::Relu);
    let alone = plan.count(|d| d.shader == wgrad::Shader::Binary && d.output == [5, 7]);
    assert!(plan.count_fused(relu_grad) == 1 && alone == 0, "{plan}");
}
