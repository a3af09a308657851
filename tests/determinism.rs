//! The same seed on the same adapter gives bit-identical losses and weights across runs
//! (two trainers in one process, each built from scratch), for the MNIST MLP and CNN.

mod common;
#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use wgrad::{Graph, Learner, Trainer};

/// Losses (as bits) of `steps` training steps and the final weights (as bits).
fn run(kind: &str, steps: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let ctx = common::ctx();
    let g = Graph::with_seed(11);
    let (x, y, z) = mnist_example::graph(&g, kind).unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let err = g.classification_error(z, y).unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), Learner::adam(0.001)).unwrap();
    let batch = 8;
    let pixels = common::rand_vec(batch * 784, 3);
    let xs: Vec<f32> = pixels.iter().map(|v| (v + 1.0) * 127.0).collect();
    let ys: Vec<f32> = (0..batch * 10)
        .map(|i| (i % 10 == (i / 10) % 10) as u8 as f32)
        .collect();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let s = t
            .train_minibatch(&[(x, &xs), (y, &ys)], true)
            .unwrap()
            .unwrap();
        losses.push(s.loss.to_bits());
    }
    let weights = t
        .executor()
        .export_state()
        .unwrap()
        .into_iter()
        .map(|s| s.2.iter().map(|v| v.to_bits()).collect())
        .collect();
    (losses, weights)
}

#[test]
fn training_is_bit_identical_across_runs() {
    for kind in ["mlp", "cnn"] {
        let (l1, w1) = run(kind, 6);
        let (l2, w2) = run(kind, 6);
        assert_eq!(l1, l2, "{kind}: losses differ");
        assert!(w1 == w2, "{kind}: weights differ");
        // The steps did train (so equal weights are not equal initial weights).
        assert_ne!(l1[0], l1[5], "{kind}");
    }
}
