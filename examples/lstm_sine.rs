//! CNTK tutorial 106A: an LSTM predicting a sine wave M steps ahead from windows of N
//! samples. sin over linspace(0, 100, 10000), N = 5, M = 5, split 80/10/10 in order (CNTK's
//! split_data), LSTM(5) → last → Dropout(0.2) → Dense(1), squared error, batch 100 in data
//! order, 100 epochs, fsadagrad lr 0.02 momentum 0.9 as in the tutorial.
//!
//! It prints the test MSE twice: per test window, and as the tutorial's `get_mse` computes
//! it (the sum of its minibatches' mean errors divided by the number of test windows, about
//! 1/111 of the first), which is the number CNTK's test bounds at 4.9e-5.
//!
//! ```text
//! cargo run --release --example lstm_sine
//! ```
//! `--help` lists the options: learner (fsadagrad, adam), learning rate, model (lstm, gru,
//! rnn), epochs, seed, dropout, forget-gate bias, shuffling and a line per epoch.

use wgrad::data::Dataset;
use wgrad::nn::{Dense, Dropout, Gru, Last, Lstm, Rnn, Sequential};
use wgrad::{Context, FitOptions, Graph, Learner, Trainer};

const N: usize = 5;
const M: usize = 5;

/// The windows and targets of CNTK 106A's generate_data, split into (train, validation,
/// test) as its split_data does.
pub fn sine_data() -> wgrad::Result<(Dataset, Dataset, Dataset)> {
    let points = 10_000;
    let data: Vec<f32> = (0..points)
        .map(|i| ((i as f64 * 100.0 / (points - 1) as f64) as f32).sin())
        .collect();
    let count = points - M - N + 1;
    let ntest = (count as f64 * 0.9).round() as usize;
    let nval = (ntest as f64 * 0.9).round() as usize;
    let part = |from: usize, to: usize| -> wgrad::Result<Dataset> {
        let x: Vec<f32> = (from..to).flat_map(|i| data[i..i + N].to_vec()).collect();
        let y: Vec<f32> = (from..to).map(|i| data[i + N - 1 + M]).collect();
        Dataset::new()
            .with_stream("x", N, x)?
            .with_stream("lengths", 1, vec![N as f32; to - from])?
            .with_stream("y", 1, y)
    };
    Ok((part(0, nval)?, part(nval, ntest)?, part(ntest, count)?))
}

/// The test error as CNTK 106A reports it (its `get_mse`): the mean squared error of each
/// minibatch of 100 that its `next_batch` yields (from window 0 while a whole batch and at
/// least one window more remain, so the last windows are left out), summed, then divided
/// by the number of test windows. Its test's bound, 4.9e-5, is on this number, which is
/// about the per-window MSE divided by 111 for the 999 test windows.
pub fn cntk_get_mse(
    trainer: &mut Trainer,
    test: &Dataset,
    inputs: &[(&str, wgrad::NodeId)],
) -> wgrad::Result<f32> {
    let (n, batch) = (test.len(), 100);
    let mut sum = 0.0;
    for start in (0..n.saturating_sub(batch)).step_by(batch) {
        sum += trainer
            .evaluate(&test.slice(start..start + batch)?, inputs, batch)?
            .loss;
    }
    Ok(sum / n as f32)
}

/// The test errors of a trained model: the mean squared error per test window, and the
/// same as CNTK 106A reports it ([`cntk_get_mse`]).
#[derive(Clone, Copy, Debug)]
pub struct TestError {
    /// Mean squared error per test window.
    pub mse: f32,
    /// CNTK 106A's `get_mse` of the same predictions.
    pub cntk: f32,
}

/// Trains the 106A model and returns its test errors.
#[allow(clippy::too_many_arguments)]
pub fn train(
    ctx: &Context,
    model: &str,
    learner: Learner,
    epochs: usize,
    seed: u64,
    dropout: f32,
    forget_bias: f32,
    shuffle: bool,
    verbose: bool,
) -> wgrad::Result<TestError> {
    let (train, _val, test) = sine_data()?;
    let g = Graph::with_seed(seed);
    let x = g.input_sequence("x", &[1])?;
    let y = g.input("y", &[1])?;
    let recurrent = match model {
        "lstm" => Sequential::new().add(Lstm {
            forget_bias,
            ..Lstm::new(5)
        }),
        "gru" => Sequential::new().add(Gru::new(5)),
        "rnn" => Sequential::new().add(Rnn::new(5)),
        other => {
            return Err(wgrad::Error::Invalid(format!(
                "--model {other}: use lstm, gru or rnn"
            )))
        }
    };
    let z = recurrent
        .add(Last)
        .add(Dropout(dropout))
        .add(Dense::new(1))
        .build(&g, x)?;
    let loss = g.squared_error(z, y)?;
    let mut trainer = Trainer::new(ctx, &g, loss, None, learner)?;
    let inputs = [("x", x), ("lengths", g.sequence_lengths()), ("y", y)];
    let opts = FitOptions {
        epochs,
        batch: 100,
        shuffle_seed: shuffle.then_some(seed),
        print_epochs: verbose,
        ..FitOptions::default()
    };
    trainer.fit(&train, None, &inputs, &opts)?;
    let mse = trainer.evaluate(&test, &inputs, 100)?.loss;
    let cntk = cntk_get_mse(&mut trainer, &test, &inputs)?;
    Ok(TestError { mse, cntk })
}

/// CNTK 106A: an LSTM (or GRU, RNN) predicting a sine wave 5 steps ahead.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// The learner: fsadagrad (the tutorial's) or adam.
    #[arg(long, default_value = "fsadagrad")]
    learner: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.02)]
    lr: f32,
    /// The recurrent layer: lstm, gru or rnn.
    #[arg(long, default_value = "lstm")]
    model: String,
    /// Epochs to train.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Seed of the initialisation (and the shuffling).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dropout after the recurrence.
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Added to the LSTM's forget gate (0: CNTK's LSTM).
    #[arg(long, default_value_t = 0.0)]
    forget_bias: f32,
    /// Shuffle the training windows each epoch (the tutorial keeps them in order).
    #[arg(long)]
    shuffle: bool,
    /// A line per epoch.
    #[arg(long)]
    verbose: bool,
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let (model, lr) = (args.model.clone(), args.lr);
    let learner = match args.learner.as_str() {
        "fsadagrad" => Learner::fsadagrad(lr, 0.9),
        "adam" => Learner::adam(lr),
        other => {
            return Err(wgrad::Error::Invalid(format!(
                "--learner {other}: use fsadagrad or adam"
            )))
        }
    };
    let (epochs, seed) = (args.epochs, args.seed);
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "CNTK 106A: {model}(5), {epochs} epochs, {:?}",
        learner.algorithm
    );
    let t0 = std::time::Instant::now();
    let (dropout, forget_bias) = (args.dropout, args.forget_bias);
    let (verbose, shuffle) = (args.verbose, args.shuffle);
    let err = train(
        &ctx,
        &model,
        learner,
        epochs,
        seed,
        dropout,
        forget_bias,
        shuffle,
        verbose,
    )?;
    println!("trained in {:.1} s", t0.elapsed().as_secs_f64());
    println!("test MSE: {:.1e} (per test window)", err.mse);
    println!(
        "test MSE as CNTK 106A prints it: {:.1e} (its get_mse: the sum of its minibatch means over \
         the number of test windows; CNTK's test bound 4.9e-5 is on this number)",
        err.cntk
    );
    Ok(())
}
