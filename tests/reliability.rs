//! Reliability: tie conventions of gradients, NaN propagation, the numerics guard, device
//! errors, bounded memory, all-or-nothing loads and honest empties. Each test here failed
//! before the fix it guards.

mod common;
use wgrad::{Executor, Graph, NodeId, Shape};

/// Gradients of `sum(r ⊙ build(x))` with respect to a fixed input `x`.
fn grad_of(
    dims: &[usize],
    x: &[f32],
    build: impl Fn(&Graph, NodeId) -> NodeId,
    r: &[f32],
) -> Vec<f32> {
    let g = Graph::new();
    let xi = g.input_with_shape("x", Shape::fixed(dims)).unwrap();
    let out = build(&g, xi);
    let ri = g.input_with_shape("r", g.shape(out)).unwrap();
    let loss = g.reduce_sum(g.mul(out, ri).unwrap(), &[]).unwrap();
    let gx = g.grad(loss, &[xi]).unwrap();
    let mut ex = Executor::new(&common::ctx(), &g).unwrap();
    ex.eval(&gx, &[(xi, x), (ri, r)]).unwrap().remove(0)
}

#[test]
fn reduce_max_and_min_split_the_gradient_among_ties() {
    // Rows of 5 with 1, 2, 3 and 5 tied extrema.
    let x = [
        1.0, 3.0, 0.0, 2.0, -1.0, //
        3.0, 1.0, 3.0, 0.0, 2.0, //
        -2.0, 4.0, 4.0, 1.0, 4.0, //
        7.0, 7.0, 7.0, 7.0, 7.0f32,
    ];
    let r = [2.0, -1.0, 0.5, 3.0f32];
    let gx = grad_of(&[4, 5], &x, |g, x| g.reduce_max(x, &[1]).unwrap(), &r);
    for row in 0..4 {
        let vals = &x[row * 5..row * 5 + 5];
        let top = vals.iter().cloned().fold(f32::MIN, f32::max);
        let ties = vals.iter().filter(|&&v| v == top).count() as f32;
        for j in 0..5 {
            let want = if vals[j] == top { r[row] / ties } else { 0.0 };
            assert!(
                (gx[row * 5 + j] - want).abs() < 1e-6,
                "row {row} col {j}: {} vs {want}",
                gx[row * 5 + j]
            );
        }
        let sum: f32 = gx[row * 5..row * 5 + 5].iter().sum();
        assert!((sum - r[row]).abs() < 1e-6, "row {row} sums to {sum}");
    }
    // Minimum over every axis, three ties.
    let x = [1.0, 1.0, 2.0, 0.0, 0.0, 0.0f32];
    let gx = grad_of(
        &[2, 3],
        &x,
        |g, x| g.reduce_min(x, &[0, 1]).unwrap(),
        &[6.0],
    );
    assert_eq!(gx, vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
}

#[test]
fn relu_maximum_and_minimum_propagate_nan() {
    let nan = f32::NAN;
    let (y, _) = common::run(&[vec![4]], &[vec![nan, -1.0, 2.0, nan]], |g, x| {
        g.relu(x[0]).unwrap()
    });
    assert!(y[0].is_nan() && y[3].is_nan(), "relu: {y:?}");
    assert_eq!(&y[1..3], &[0.0, 2.0]);
    for which in ["maximum", "minimum"] {
        let (y, _) = common::run(
            &[vec![3], vec![3]],
            &[vec![nan, 1.0, 5.0], vec![0.0, nan, 3.0]],
            |g, x| match which {
                "maximum" => g.maximum(x[0], x[1]).unwrap(),
                _ => g.minimum(x[0], x[1]).unwrap(),
            },
        );
        assert!(y[0].is_nan() && y[1].is_nan(), "{which}: {y:?}");
        assert_eq!(y[2], if which == "maximum" { 5.0 } else { 3.0 });
    }
    let (y, _) = common::run(
        &[vec![2, 3]],
        &[vec![1.0, nan, 0.0, 4.0, 2.0, 3.0]],
        |g, x| g.reduce_max(x[0], &[1]).unwrap(),
    );
    assert!(y[0].is_nan() && y[1] == 4.0, "reduce_max: {y:?}");
}
