//! Bad input gives an `Err` with a message naming the op and the shapes, never a panic.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use wgrad::{Executor, Graph, Init, Shape};

#[test]
fn shape_mismatches_name_the_op_and_both_shapes() {
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let w = g.parameter("w", &[4, 2], Init::Zeros).unwrap();
    let e = g.matmul(x, w).unwrap_err().to_string();
    assert!(
        e.starts_with("matmul") && e.contains("[batch, 3]") && e.contains("[4, 2]"),
        "{e}"
    );
    let b = g.parameter("b", &[4], Init::Zeros).unwrap();
    let e = g.add(x, b).unwrap_err().to_string();
    assert!(
        e.starts_with("add") && e.contains("[batch, 3]") && e.contains("[4]"),
        "{e}"
    );
    let e = g.reshape(x, Shape::batched(&[4])).unwrap_err().to_string();
    assert!(e.contains("reshape") && e.contains("[batch, 4]"), "{e}");
    let y = g.input("y", &[4]).unwrap();
    let e = g.cross_entropy_with_softmax(x, y).unwrap_err().to_string();
    assert!(
        e.contains("cross_entropy_with_softmax") && e.contains("[batch, 3]"),
        "{e}"
    );
    let e = g.softmax(x, 2).unwrap_err().to_string();
    assert!(e.contains("axis 2"), "{e}");
    assert!(g
        .parameter("w", &[1], Init::Zeros)
        .unwrap_err()
        .to_string()
        .contains("already used"));
    // The batch axis cannot be broadcast against a fixed size.
    let p = g.parameter("p", &[5, 3], Init::Zeros).unwrap();
    assert!(g
        .mul(x, p)
        .unwrap_err()
        .to_string()
        .contains("cannot be broadcast"));
}

#[test]
fn bad_feeds_are_errors() {
    let ctx = common::ctx();
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let w = g.parameter("w", &[3, 2], Init::Zeros).unwrap();
    let z = g.add(g.matmul(x, w).unwrap(), y).unwrap();
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let e = ex.eval(&[z], &[(x, &[1.0; 6])]).unwrap_err().to_string();
    assert!(e.contains("'y'") && e.contains("not fed"), "{e}");
    let e = ex
        .eval(&[z], &[(x, &[1.0; 7]), (y, &[0.0; 4])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'x'") && e.contains("multiple of 3") && e.contains("got 7"),
        "{e}"
    );
    let e = ex
        .eval(&[z], &[(x, &[1.0; 6]), (y, &[0.0; 6])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("disagree") && e.contains("2 samples") && e.contains("3"),
        "{e}"
    );
    let e = ex
        .eval(&[z], &[(x, &[]), (y, &[])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-zero"), "{e}");
    let e = ex
        .eval(&[z], &[(w, &[0.0; 6]), (x, &[1.0; 3]), (y, &[0.0; 2])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an input"), "{e}");
    // The right feed still works after all those errors.
    assert_eq!(
        ex.eval(&[z], &[(x, &[1.0; 3]), (y, &[0.5, 2.0])]).unwrap(),
        vec![vec![0.5, 2.0]]
    );
}

#[test]
fn sizes_past_the_adapter_limit_are_errors() {
    let ctx = common::ctx();
    let limit = ctx.max_binding_bytes() as usize / 4;
    let g = Graph::new();
    g.parameter("huge", &[limit + 1], Init::Zeros).unwrap();
    let e = Executor::new(&ctx, &g)
        .err()
        .expect("too large")
        .to_string();
    assert!(e.contains("adapter allows at most"), "{e}");
    // A batch whose activations exceed the limit fails at planning, not inside wgpu.
    let g = Graph::new();
    let x = g.input("x", &[1024]).unwrap();
    let w = g.parameter("w", &[1024, 1024], Init::Zeros).unwrap();
    let z = g.matmul(x, w).unwrap();
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let n = limit / 1024 + 1;
    let big = vec![0.0f32; n * 1024];
    let e = ex.eval(&[z], &[(x, &big)]).unwrap_err().to_string();
    assert!(e.contains("adapter allows at most"), "{e}");
}

#[test]
fn grad_of_non_scalar_is_an_error() {
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let e = g.grad(x, &[x]).unwrap_err().to_string();
    assert!(e.contains("scalar"), "{e}");
}

#[test]
fn fused_ops_reject_bad_shapes() {
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let b = g.parameter("b", &[4], Init::Zeros).unwrap();
    let e = g.bias_act(x, b, -1, None).unwrap_err().to_string();
    assert!(
        e.starts_with("bias_act") && e.contains("[4]") && e.contains("[batch, 3]"),
        "{e}"
    );
    let e = g.bias_act(x, b, 0, None).unwrap_err().to_string();
    assert!(e.contains("batch axis"), "{e}");
    let b3 = g.parameter("b3", &[3], Init::Zeros).unwrap();
    let e = g
        .bias_act(x, b3, -1, Some(wgrad::UnaryOp::Exp))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bias_act") && e.contains("Exp"), "{e}");
    let e = g.channel_sum(x, 0).unwrap_err().to_string();
    assert!(e.contains("channel_sum") && e.contains("batch axis"), "{e}");
    let p = g.input("p", &[2, 3]).unwrap();
    let q = g.parameter("q", &[3, 2], Init::Zeros).unwrap();
    let e = g
        .matmul_sum_batch_t(p, q, false, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("matmul") && e.contains("[3, 2]"), "{e}");
}
