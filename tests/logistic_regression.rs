//! Integration: CNTK tutorial 101 trains to a test error of at most 0.10.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;

#[path = "../examples/logistic_regression.rs"]
mod example;

/// Plain SGD at lr 0.5 on these unnormalised features oscillates (a numpy implementation of
/// the same loop shows the same spread), so one run's final error is a draw: the test checks
/// the median over eight seeds, plus the example's default seed.
#[test]
fn logistic_regression_reaches_tutorial_error() {
    let ctx = common::ctx();
    let mut errors = Vec::new();
    for seed in 0..8 {
        let mut losses = Vec::new();
        let err = example::train(&ctx, seed, |_, loss, _| losses.push(loss)).unwrap();
        assert_eq!(losses.len(), 16, "a report every 50 of 800 minibatches");
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "seed {seed}: {losses:?}"
        );
        errors.push(err);
    }
    let mut sorted = errors.clone();
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[3] + sorted[4]) / 2.0;
    assert!(
        median <= 0.10,
        "median test error {median} > 0.10 ({errors:?})"
    );
    assert!(
        errors[1] <= 0.10,
        "the example's default seed: {}",
        errors[1]
    );
    // The best linear classifier gets about 0.077: nothing should beat it by much.
    assert!(sorted[0] >= 0.05, "suspiciously low error {errors:?}");
}

/// The sigmoid + binary cross-entropy form learns the same classifier.
#[test]
fn sigmoid_form_trains_too() {
    let ctx = common::ctx();
    let mut errors: Vec<f32> = (0..8)
        .map(|seed| example::train_form(&ctx, seed, example::Form::Sigmoid, |_, _, _| {}).unwrap())
        .collect();
    errors.sort_by(f32::total_cmp);
    let median = (errors[3] + errors[4]) / 2.0;
    assert!(
        median <= 0.10 && errors[0] >= 0.05,
        "sigmoid form test errors {errors:?}"
    );
}
