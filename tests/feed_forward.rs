//! Integration: CNTK tutorial 102 (feed-forward) trains to a test error of at most 0.10.

mod common;

#[path = "../examples/feed_forward.rs"]
mod feed_forward;

/// CNTK 102: two hidden layers of 50 sigmoid units on the same data reach a test error of at
/// most 0.10 (the target; CNTK's notebook reports 0.12 on 25 samples) at every seed
/// tried, and nothing implausibly low.
#[test]
fn feed_forward_reaches_tutorial_error() {
    let ctx = common::ctx();
    for seed in 0..4 {
        let mut losses = Vec::new();
        let err = feed_forward::train(&ctx, seed, |_, loss, _| losses.push(loss)).unwrap();
        assert_eq!(losses.len(), 16);
        assert!(losses[15] < losses[0], "seed {seed}: {losses:?}");
        assert!(
            (0.05..=0.10).contains(&err),
            "seed {seed}: test error {err}"
        );
    }
}
