//! Data-parallel steps without MPI: a one-rank group (`SingleProcess`) runs the whole
//! data-parallel path — gradients read back (in buckets, overlapped with the backward pass
//! or not), all-reduced, fed to the learner's update — and must train exactly like a plain
//! `Trainer`. Over MPI with two ranks: tests/distributed.rs (feature `mpi`).

mod common;

use rand::{rngs::StdRng, Rng, SeedableRng};
use wgrad::data::SequenceBatch;
use wgrad::distributed::{DataParallelOptions, SingleProcess};
use wgrad::nn::{Activation, Conv2d, Dense, Last, Lstm, Sequential};
use wgrad::{Graph, Learner, NodeId, Shape, Trainer};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn one_hot(rows: usize, classes: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![0.0; rows * classes];
    for r in 0..rows {
        v[r * classes + rng.random_range(0..classes)] = 1.0;
    }
    v
}

/// A model: the graph's inputs to feed, its loss and metric.
type Built = (Graph, NodeId, NodeId);

/// The values to feed a model's inputs.
type Feeds = Vec<(NodeId, Vec<f32>)>;

/// Trains `build`'s model for 4 steps on `feeds` with a plain trainer and with one-rank
/// data-parallel trainers (overlapped and not, buckets of `bucket` floats); the losses and
/// parameters must agree.
fn same_training(
    name: &str,
    build: &dyn Fn() -> Built,
    feeds: &dyn Fn(&Graph) -> Feeds,
    bucket: usize,
    buckets: usize,
) {
    let ctx = common::ctx();
    let learner = Learner::momentum_sgd(0.05, 0.9).clip_norm(2.0);
    let run = |trainer: &mut Trainer, g: &Graph| -> (Vec<f32>, Vec<Vec<f32>>) {
        let data = feeds(g);
        let feed: Vec<(NodeId, &[f32])> = data.iter().map(|(n, v)| (*n, &v[..])).collect();
        let losses = (0..4)
            .map(|_| trainer.train_minibatch(&feed, true).unwrap().unwrap().loss)
            .collect();
        let params = g
            .parameters()
            .iter()
            .map(|&p| trainer.executor().parameter(p).unwrap())
            .collect();
        (losses, params)
    };
    let (g, loss, err) = build();
    let (want_losses, want) = run(
        &mut Trainer::new(&ctx, &g, loss, Some(err), learner).unwrap(),
        &g,
    );
    for overlap in [true, false] {
        let (g, loss, err) = build();
        let options = DataParallelOptions {
            check_every: 1,
            bucket_floats: bucket,
            overlap,
        };
        let comm = Box::new(SingleProcess);
        let mut t =
            Trainer::data_parallel_with(&ctx, &g, loss, Some(err), learner, comm, options).unwrap();
        let (losses, got) = run(&mut t, &g);
        assert_eq!(t.exchange_timing().unwrap().buckets, buckets, "{name}");
        assert_eq!(losses, want_losses, "{name}, overlap {overlap}: the losses");
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                    "{name}, overlap {overlap}: parameter {k}: {x} against {y}"
                );
            }
        }
    }
}

/// A classifier into `classes` of what `input` makes of the graph's inputs, through `layers`.
fn classifier(
    seed: u64,
    classes: usize,
    input: &dyn Fn(&Graph) -> NodeId,
    layers: Sequential,
) -> Built {
    let g = Graph::with_seed(seed);
    let x = input(&g);
    let y = g.input("y", &[classes]).unwrap();
    let z = layers.build(&g, x).unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let err = g.classification_error(z, y).unwrap();
    (g, loss, err)
}

/// `rows` samples of `features` values for input `x` and one-hot labels of `classes`.
fn samples(g: &Graph, rows: usize, features: usize, classes: usize, seed: u64) -> Feeds {
    vec![
        (g.find("x").unwrap(), values(rows * features, seed)),
        (g.find("y").unwrap(), one_hot(rows, classes, seed + 1)),
    ]
}

#[test]
fn one_rank_trains_an_mlp_like_a_plain_trainer() {
    let build = || {
        let layers = Sequential::new()
            .add(Dense::new(37).relu())
            .add(Dense::new(21).activation(Activation::Tanh))
            .add(Dense::new(5));
        classifier(3, 5, &|g| g.input("x", &[13]).unwrap(), layers)
    };
    // Gradients in reverse: 5, 105, 21, 777, 37, 481 floats → buckets of ≤ 800.
    same_training("mlp", &build, &|g| samples(g, 16, 13, 5, 1), 800, 3);
}

#[test]
fn one_rank_trains_a_cnn_like_a_plain_trainer() {
    let build = || {
        let image = |g: &Graph| {
            let x = g.input("x", &[2 * 9 * 9]).unwrap();
            g.reshape(x, Shape::batched(&[2, 9, 9])).unwrap()
        };
        let layers = Sequential::new()
            .add(Conv2d::new(5, (3, 3)).same().relu())
            .add(Conv2d::new(7, (3, 3)).stride(2).relu())
            .add(Dense::new(3));
        classifier(4, 3, &image, layers)
    };
    // Every gradient a bucket of its own.
    same_training("cnn", &build, &|g| samples(g, 8, 162, 3, 5), 1, 6);
}

/// An LSTM of 40 units runs one step at a time on CPU adapters (a loop in the plan): its
/// gradients are final only after the loop.
#[test]
fn one_rank_trains_an_lstm_like_a_plain_trainer() {
    let build = || {
        let layers = Sequential::new()
            .add(Lstm::new(40))
            .add(Last)
            .add(Dense::new(3));
        classifier(5, 3, &|g| g.input_sequence("x", &[6]).unwrap(), layers)
    };
    let feeds = |g: &Graph| {
        let seqs: Vec<Vec<f32>> = [5usize, 3, 7, 1]
            .iter()
            .enumerate()
            .map(|(k, &l)| values(l * 6, 20 + k as u64))
            .collect();
        let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
        let batch = SequenceBatch::pack(&refs, 6).unwrap();
        let [(x, xs), (l, ls)] = batch.feed(g.find("x").unwrap(), g.sequence_lengths());
        vec![
            (x, xs.to_vec()),
            (l, ls.to_vec()),
            (g.find("y").unwrap(), one_hot(4, 3, 7)),
        ]
    };
    same_training("lstm", &build, &feeds, 1, 5);
}
