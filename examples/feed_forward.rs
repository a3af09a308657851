//! CNTK tutorial 102, a feed-forward classifier, on wgrad: the data of tutorial 101 (two
//! classes of 2-D points, X = (randn(2) + 3)·(Y + 1)), two hidden layers of 50 sigmoid units,
//! softmax cross-entropy, plain SGD with learning rate 0.5 on minibatches of 25, for 20,000
//! samples. The test error is measured on 10,000 fresh samples (CNTK's notebook: 0.12 on 25).
//!
//! Run: `cargo run --release --example feed_forward [-- --seed N]`

#[path = "logistic_regression.rs"]
#[allow(dead_code)]
mod logistic_regression;

use logistic_regression::{generate, INPUT_DIM, NUM_CLASSES};
use rand::{rngs::StdRng, SeedableRng};
use wgrad::nn::{Activation, Dense, Sequential};
use wgrad::{Context, Graph, Sgd, Trainer};

/// Trains as the tutorial does and returns the error on 10,000 fresh samples; `report`
/// receives (minibatch, mean loss, mean error) every 50 minibatches.
pub fn train(
    ctx: &Context,
    seed: u64,
    mut report: impl FnMut(usize, f32, f32),
) -> wgrad::Result<f32> {
    let (minibatch, samples, lr) = (25, 20_000, 0.5);
    let g = Graph::with_seed(seed);
    let features = g.input("features", &[INPUT_DIM])?;
    let labels = g.input("labels", &[NUM_CLASSES])?;
    let z = Sequential::new()
        .add(Dense::new(50).activation(Activation::Sigmoid))
        .add(Dense::new(50).activation(Activation::Sigmoid))
        .add(Dense::new(NUM_CLASSES))
        .build(&g, features)?;
    let loss = g.cross_entropy_with_softmax(z, labels)?;
    let error = g.classification_error(z, labels)?;
    let mut trainer = Trainer::new(ctx, &g, loss, Some(error), Sgd::new(lr))?;
    let mut rng = StdRng::seed_from_u64(seed);
    for mb in 1..=samples / minibatch {
        let (x, y) = generate(minibatch, &mut rng);
        let read = mb % 50 == 0;
        if let Some(s) = trainer.train_minibatch(&[(features, &x), (labels, &y)], read)? {
            report(mb, s.loss, s.metric.unwrap_or(f32::NAN));
        }
    }
    let (x, y) = generate(10_000, &mut rng);
    trainer.test_minibatch(&[(features, &x), (labels, &y)])
}

/// CNTK 102: a feed-forward classifier (2 × 50 sigmoid units) on the data of tutorial 101.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// Seed of the data and the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "model: 2 × Dense(50, sigmoid) → Dense(2), SGD lr 0.5, minibatch 25, 20,000 samples, seed {}",
        args.seed
    );
    let err = train(&ctx, args.seed, |mb, loss, err| {
        println!("minibatch {mb:4}: loss {loss:.4}, error {err:.3}");
    })?;
    println!("test error: {err:.3}");
    Ok(())
}
