//! CNTK tutorial 101, logistic regression, on wgrad.
//!
//! Two classes of 2-D points: label Y is 0 or 1 with equal odds and X = (randn(2) + 3)·(Y + 1).
//! A linear model z = x·W + b with 2 outputs, softmax cross-entropy, plain SGD with learning
//! rate 0.5 on minibatches of 25, for 20,000 samples (800 minibatches). The test error is
//! measured on 10,000 fresh samples.
//!
//! Run: `cargo run --release --example logistic_regression [-- --seed N] [--sigmoid]`

use rand::{rngs::StdRng, Rng, SeedableRng};
use wgrad::{Context, Graph, Init, Sgd, Trainer};

/// Features, dimension of one sample.
pub const INPUT_DIM: usize = 2;
/// Classes.
pub const NUM_CLASSES: usize = 2;

/// `n` samples of the tutorial's data: (features [n, 2], one-hot labels [n, 2]).
pub fn generate(n: usize, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(n * INPUT_DIM);
    let mut y = vec![0.0; n * NUM_CLASSES];
    for i in 0..n {
        let label = rng.random_range(0..NUM_CLASSES);
        for _ in 0..INPUT_DIM {
            // Box-Muller normal sample.
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            x.push(((z + 3.0) * (label as f64 + 1.0)) as f32);
        }
        y[i * NUM_CLASSES + label] = 1.0;
    }
    (x, y)
}

/// The model's output form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Two outputs, softmax cross-entropy (the tutorial's form).
    Softmax,
    /// One output, sigmoid with binary cross-entropy (the form the CNTK talk derives).
    Sigmoid,
}

/// Trains as the tutorial does and returns the error on 10,000 fresh samples.
/// `report` receives (minibatch, mean loss, mean error) every 50 minibatches.
pub fn train(ctx: &Context, seed: u64, report: impl FnMut(usize, f32, f32)) -> wgrad::Result<f32> {
    train_form(ctx, seed, Form::Softmax, report)
}

/// [`train`] with either output form.
pub fn train_form(
    ctx: &Context,
    seed: u64,
    form: Form,
    mut report: impl FnMut(usize, f32, f32),
) -> wgrad::Result<f32> {
    let (minibatch, samples, lr) = (25, 20_000, 0.5);
    let outputs = if form == Form::Softmax {
        NUM_CLASSES
    } else {
        1
    };
    let g = Graph::with_seed(seed);
    let features = g.input("features", &[INPUT_DIM])?;
    let labels = g.input("labels", &[outputs])?;
    let w = g.parameter("weight", &[INPUT_DIM, outputs], Init::GlorotUniform)?;
    let b = g.parameter("bias", &[outputs], Init::Zeros)?;
    let z = g.add(g.matmul(features, w)?, b)?;
    let (loss, error) = match form {
        Form::Softmax => (
            g.cross_entropy_with_softmax(z, labels)?,
            g.classification_error(z, labels)?,
        ),
        Form::Sigmoid => {
            // Predict class 1 when σ(z) > 0.5, i.e. z > 0; the error is |prediction − label|.
            let predicted = g.binary(wgrad::BinaryOp::Gt, z, g.scalar(0.0))?;
            (
                g.binary_cross_entropy_with_logits(z, labels)?,
                g.abs(g.sub(predicted, labels)?)?,
            )
        }
    };
    let mut trainer = Trainer::new(ctx, &g, loss, Some(error), Sgd::new(lr))?;
    // The sigmoid form's label is the one-hot row's second entry.
    let shape_labels = |y: Vec<f32>| match form {
        Form::Softmax => y,
        Form::Sigmoid => y.chunks(NUM_CLASSES).map(|r| r[1]).collect(),
    };

    let mut rng = StdRng::seed_from_u64(seed);
    for mb in 1..=samples / minibatch {
        let (x, y) = generate(minibatch, &mut rng);
        let y = shape_labels(y);
        let read = mb % 50 == 0;
        if let Some(s) = trainer.train_minibatch(&[(features, &x), (labels, &y)], read)? {
            report(mb, s.loss, s.metric.unwrap_or(f32::NAN));
        }
    }
    let (x, y) = generate(10_000, &mut rng);
    let y = shape_labels(y);
    trainer.test_minibatch(&[(features, &x), (labels, &y)])
}

/// CNTK 101: logistic regression on two Gaussian classes.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// Seed of the data and the initialisation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One output with binary cross-entropy instead of the two-class softmax.
    #[arg(long)]
    sigmoid: bool,
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    // `--seed N` picks the data and initialisation. Plain SGD at lr 0.5 on unnormalised
    // features oscillates, so the last minibatches decide the final error: over seeds 0–15 it
    // ranged 0.070–0.153 with median 0.084 (seed 0: 0.153). The default seed, 1, is a typical
    // run (0.078); see README.md.
    let args = <Args as clap::Parser>::parse();
    let seed = args.seed;
    let form = if args.sigmoid {
        Form::Sigmoid
    } else {
        Form::Softmax
    };
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!("model: {form:?} output, SGD lr 0.5, minibatch 25, 20,000 samples, seed {seed}");
    let err = train_form(&ctx, seed, form, |mb, loss, err| {
        println!("minibatch {mb:4}: loss {loss:.4}, error {err:.3}");
    })?;
    println!("test error: {err:.3}");
    Ok(())
}
