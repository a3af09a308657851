//! The training loop: resuming from a checkpoint continues exactly, early stopping, atomic
//! files, and L-BFGS against the optimum gradient descent converges to.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use common::*;
use wgrad::data::Dataset;
use wgrad::lbfgs::{lbfgs, LbfgsOptions};
use wgrad::nn::{Dense, Dropout, Sequential};
use wgrad::{EarlyStopping, FitOptions, Graph, Init, Learner, NodeId, Trainer};

/// Two noisy classes in 4-D, one-hot labels.
fn dataset(n: usize, seed: u64) -> Dataset {
    let noise = rand_vec(n * 4, seed);
    let mut x = Vec::with_capacity(n * 4);
    let mut y = vec![0.0; n * 2];
    for i in 0..n {
        let c = i % 2;
        for k in 0..4 {
            x.push(noise[i * 4 + k] + if c == 1 { 0.8 } else { -0.8 } * (k % 2) as f32);
        }
        y[i * 2 + c] = 1.0;
    }
    Dataset::new()
        .with_stream("x", 4, x)
        .unwrap()
        .with_stream("y", 2, y)
        .unwrap()
}

fn trainer(ctx: &wgrad::Context) -> (Trainer, NodeId, NodeId, Graph) {
    let g = Graph::with_seed(5);
    let x = g.input("x", &[4]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let z = Sequential::new()
        .add(Dense::new(8).relu())
        .add(Dropout(0.25))
        .add(Dense::new(2))
        .build(&g, x)
        .unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let err = g.classification_error(z, y).unwrap();
    let t = Trainer::new(ctx, &g, loss, Some(err), Learner::adam(0.01)).unwrap();
    (t, x, y, g)
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch: 16,
        progress: false,
        print_epochs: false,
        ..FitOptions::default()
    }
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    let ctx = ctx();
    let (train, test) = (dataset(100, 1), dataset(40, 2));
    let dir = std::env::temp_dir().join(format!("wgrad-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("model.safetensors");

    // Uninterrupted: 4 epochs.
    let (mut a, x, y, _) = trainer(&ctx);
    let full = a
        .fit(&train, Some(&test), &[("x", x), ("y", y)], &quiet(4))
        .unwrap();
    let final_a = a.executor().export_state().unwrap();

    // Interrupted after 2 epochs, then a fresh trainer resumes to 4.
    let (mut b, x, y, _) = trainer(&ctx);
    let opts = FitOptions {
        checkpoint: Some(ckpt.clone()),
        resume: true,
        metrics_csv: Some(dir.join("m.csv")),
        plot_png: Some(dir.join("curves.png")),
        ..quiet(2)
    };
    b.fit(&train, Some(&test), &[("x", x), ("y", y)], &opts)
        .unwrap();
    assert!(ckpt.exists());
    let (mut c, x, y, _) = trainer(&ctx);
    let resumed = c
        .fit(
            &train,
            Some(&test),
            &[("x", x), ("y", y)],
            &FitOptions { epochs: 4, ..opts },
        )
        .unwrap();
    assert_eq!(resumed.len(), 4);
    for (r, f) in resumed.iter().zip(&full) {
        assert_eq!(
            (r.epoch, r.train_loss, r.test_loss, r.test_metric),
            (f.epoch, f.train_loss, f.test_loss, f.test_metric)
        );
    }
    assert_eq!(
        c.executor().export_state().unwrap(),
        final_a,
        "same parameters and learner state"
    );
    let csv = std::fs::read_to_string(dir.join("m.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("epoch,train_loss"));
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "a PNG of the curves"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .contains(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
    // A corrupt checkpoint is an error naming the file.
    std::fs::write(&ckpt, b"not a checkpoint").unwrap();
    let e = c.load_checkpoint(&ckpt).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn early_stopping_stops_when_the_metric_stalls() {
    let ctx = ctx();
    let g = Graph::new();
    let x = g.input("x", &[4]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let z = Sequential::new().add(Dense::new(2)).build(&g, x).unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    // Learning rate 0: nothing improves after the first epoch.
    let mut t = Trainer::new(&ctx, &g, loss, None, Learner::sgd(0.0)).unwrap();
    let opts = FitOptions {
        early_stopping: Some(EarlyStopping {
            patience: 2,
            min_delta: 0.0,
        }),
        ..quiet(10)
    };
    let recs = t
        .fit(
            &dataset(32, 3),
            Some(&dataset(16, 4)),
            &[("x", x), ("y", y)],
            &opts,
        )
        .unwrap();
    assert_eq!(recs.len(), 3);
}

#[test]
fn lbfgs_reaches_the_gradient_descent_optimum() {
    // Logistic regression with L2 on a fixed batch: a strictly convex problem.
    let n = 200;
    let data = dataset(n, 6);
    let (xd, yd) = (
        data.stream("x").unwrap().to_vec(),
        data.stream("y").unwrap().to_vec(),
    );
    let lambda = 0.05f32;
    let ctx = ctx();
    let g = Graph::new();
    let x = g.input("x", &[4]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let w = g.parameter("w", &[4, 2], Init::Zeros).unwrap();
    let b = g.parameter("b", &[2], Init::Zeros).unwrap();
    let z = g.add(g.matmul(x, w).unwrap(), b).unwrap();
    let ce = g.cross_entropy_with_softmax(z, y).unwrap();
    let l2 = g
        .scale(
            g.reduce_sum(g.mul(w, w).unwrap(), &[]).unwrap(),
            lambda / 2.0,
        )
        .unwrap();
    let loss = g.add(ce, l2).unwrap(); // mean over samples adds l2 once
    let (ex, rep) = lbfgs(
        &ctx,
        &g,
        loss,
        &[(x, &xd), (y, &yd)],
        LbfgsOptions::default(),
    )
    .unwrap();
    assert!(rep.converged, "{rep:?}");
    assert!(rep.iterations < 100, "{rep:?}");

    // Plain gradient descent in f64 on the host, run to convergence.
    let (mut wr, mut br) = (vec![0.0f64; 8], vec![0.0f64; 2]);
    for _ in 0..20_000 {
        let (mut gw, mut gb) = (vec![0.0; 8], vec![0.0; 2]);
        for i in 0..n {
            let zz: Vec<f64> = (0..2)
                .map(|j| {
                    br[j]
                        + (0..4)
                            .map(|k| xd[i * 4 + k] as f64 * wr[k * 2 + j])
                            .sum::<f64>()
                })
                .collect();
            let m = zz[0].max(zz[1]);
            let e: Vec<f64> = zz.iter().map(|v| (v - m).exp()).collect();
            let s = e[0] + e[1];
            for j in 0..2 {
                let d = (e[j] / s - yd[i * 2 + j] as f64) / n as f64;
                gb[j] += d;
                for k in 0..4 {
                    gw[k * 2 + j] += d * xd[i * 4 + k] as f64;
                }
            }
        }
        for k in 0..8 {
            wr[k] -= 0.5 * (gw[k] + lambda as f64 * wr[k]);
        }
        for j in 0..2 {
            br[j] -= 0.5 * gb[j];
        }
    }
    assert_close("lbfgs weights", &ex.parameter(w).unwrap(), &wr, 1e-3);
    assert_close("lbfgs bias", &ex.parameter(b).unwrap(), &br, 1e-3);
}

/// The fusions hold for the MNIST CNN (CNTK 103D): a whole training step, loss and metric
/// included, is 15 dispatches (each costs about 45 µs on lavapipe), and the trainer's mean
/// loss and metric are the means of the per-sample values.
#[test]
fn cnn_training_step_is_fifteen_dispatches_and_the_guard() {
    use wgrad::nn::Conv2d;
    let ctx =
        wgrad::Context::new().unwrap_or_else(|e| panic!("GPU tests need a wgpu adapter: {e}"));
    let g = Graph::with_seed(3);
    let x = g.input("x", &[784]).unwrap();
    let y = g.input("y", &[10]).unwrap();
    let image = g
        .reshape(
            g.scale(x, 1.0 / 255.0).unwrap(),
            wgrad::Shape::batched(&[1, 28, 28]),
        )
        .unwrap();
    let z = Sequential::new()
        .add(Conv2d::new(8, (5, 5)).stride(2).same().relu())
        .add(Conv2d::new(16, (5, 5)).stride(2).same().relu())
        .add(Dense::new(10))
        .build(&g, image)
        .unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let err = g.classification_error(z, y).unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), Learner::sgd(0.01)).unwrap();
    let xs: Vec<f32> = (0..16 * 784).map(|i| (i * 7 % 256) as f32).collect();
    let ys: Vec<f32> = (0..160).map(|i| (i % 11 == 0) as u8 as f32).collect();
    let feed = [(x, &xs[..]), (y, &ys[..])];
    let per_sample = t.eval(&[loss, err], &feed).unwrap();
    let stats = t.evaluate_minibatch(&feed).unwrap();
    let mean = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
    assert!((stats.loss as f64 - mean(&per_sample[0])).abs() < 1e-6);
    assert!((stats.metric.unwrap() as f64 - mean(&per_sample[1])).abs() < 1e-6);
    t.train_minibatch(&feed, true).unwrap();
    let plan = t
        .executor()
        .plan_summary(&[loss, err], &feed, true)
        .unwrap();
    // 15 dispatches, and the numerics guard's look at the update.
    assert_eq!(plan.len(), 16, "{plan}");
    assert_eq!(
        plan.count(|d| matches!(d.role, wgrad::Role::UpdateCheck { .. })),
        1
    );
}

/// The training steps of the four CNTK 103 models, loss and metric included, keep the
/// dispatch counts they had before the planner became passes: logreg 6, mlp 14, cnn 15,
/// cnn-pool 18, with one learner update each (the metric shares the loss's pass), plus the
/// numerics guard's check of that update.
#[test]
fn mnist_training_steps_keep_their_dispatch_counts() {
    let ctx =
        wgrad::Context::new().unwrap_or_else(|e| panic!("GPU tests need a wgpu adapter: {e}"));
    for (kind, count) in [("logreg", 7), ("mlp", 15), ("cnn", 16), ("cnn-pool", 19)] {
        let g = Graph::with_seed(1);
        let (x, y, z) = mnist_example::graph(&g, kind).unwrap();
        let loss = g.cross_entropy_with_softmax(z, y).unwrap();
        let err = g.classification_error(z, y).unwrap();
        let mut t = Trainer::new(&ctx, &g, loss, Some(err), Learner::sgd(0.01)).unwrap();
        let xs: Vec<f32> = (0..4 * 784).map(|i| (i * 7 % 256) as f32).collect();
        let ys: Vec<f32> = (0..40).map(|i| (i % 11 == 0) as u8 as f32).collect();
        let feed = [(x, &xs[..]), (y, &ys[..])];
        let plan = t
            .executor()
            .plan_summary(&[loss, err], &feed, true)
            .unwrap();
        let updates = plan.count(|d| matches!(d.role, wgrad::Role::Update { .. }));
        assert_eq!(updates, 1, "{kind}:\n{plan}");
        assert_eq!(plan.len(), count, "{kind}:\n{plan}");
    }
}
