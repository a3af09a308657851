//! CNTK 103 targets on the shared MNIST subset (8,000 train / 2,000 test, 10 epochs):
//! logistic regression ≤ 10.5% and the CNN ≤ 3.5% test error. Needs the data (see
//! `common::mnist_dir`): runs whenever it exists and always in CI.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;

#[path = "../examples/mnist.rs"]
mod example;

fn quiet() -> wgrad::FitOptions {
    wgrad::FitOptions {
        progress: false,
        print_epochs: true,
        ..wgrad::FitOptions::default()
    }
}

#[test]
fn logistic_regression_meets_the_target() {
    let Some(dir) = common::mnist_dir() else {
        return;
    };
    let ctx = common::ctx();
    let (records, _) = example::train(&ctx, &dir, "logreg", 0.2, 0, &quiet()).unwrap();
    assert_eq!(records.len(), 10);
    let err = records[9].test_metric;
    assert!(err <= 0.105, "logreg test error {err}");
}

#[test]
fn cnn_meets_the_target() {
    let Some(dir) = common::mnist_dir() else {
        return;
    };
    let ctx = common::ctx();
    let (records, _) = example::train(&ctx, &dir, "cnn", 0.2, 0, &quiet()).unwrap();
    let err = records[9].test_metric;
    assert!(err <= 0.035, "cnn test error {err}");
}
