//! An LSTM reading MNIST digits row by row: 28 steps of 28 pixels, LSTM(128) → last →
//! Dense(10), Adam lr 1e-3, batch 64, 10 epochs.
//!
//! ```text
//! cargo run --release --example mnist_rows -- --data ../shared/data/mnist-10k
//! ```
//! `--help` lists the options: the data directory, epochs, seed, the recurrent layer (lstm,
//! gru, rnn, or step-lstm: the same LSTM as a step function for `Graph::recurrence`) and `--orthogonal` (the LSTM's recurrent weights start orthogonal, as in Keras
//! and Flax, instead of glorot-uniform as in CNTK) and `--export-onnx FILE`, which writes the
//! trained model as ONNX: inputs `images` `[batch, 28, 28]` (0..255 floats, row by row) and
//! `sequence lengths` `[batch]` (28s), output the 10 `scores`.

#[path = "mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use wgrad::data::{mnist, Dataset};
use wgrad::nn::{Dense, Gru, Last, Layer, Lstm, Rnn, Sequential};
use wgrad::{Context, EpochRecord, FitOptions, Graph, Init, Learner, NodeId, Trainer};

/// The dataset with a `lengths` stream: every digit is a sequence of 28 rows.
fn with_lengths(d: Dataset) -> wgrad::Result<Dataset> {
    let n = d.len();
    d.with_stream("lengths", 1, vec![28.0; n])
}

/// CNTK's LSTM (gates `[g | i | f | o]`, forget bias 1) written as a step function for
/// `Graph::recurrence` instead of the fused LSTM kernels: the input projections of every
/// step are one product before the loop, the rest runs per step. Returns the last state.
fn step_lstm(g: &Graph, x: NodeId, hn: usize) -> wgrad::Result<NodeId> {
    let features = g.shape(x).per_sample();
    let w = g.parameter("step_lstm.w", &[features, 4 * hn], Init::GlorotUniform)?;
    let u = g.parameter("step_lstm.u", &[hn, 4 * hn], Init::GlorotUniform)?;
    let b = g.parameter("step_lstm.b", &[4 * hn], Init::Zeros)?;
    let zero = g.constant(0.0, &[hn]);
    let projected = g.add(g.matmul(x, w)?, b)?;
    let states = g.recurrence(&[projected], &[zero, zero], false, |g, xs, hs| {
        let z = g.add(xs[0], g.matmul(hs[0], u)?)?;
        let gate = |k: usize| g.slice(z, -1, k * hn, (k + 1) * hn);
        let candidate = g.tanh(gate(0)?)?;
        let input = g.sigmoid(gate(1)?)?;
        let forget = g.sigmoid(g.add(gate(2)?, g.scalar(1.0))?)?;
        let output = g.sigmoid(gate(3)?)?;
        let c = g.add(g.mul(forget, hs[1])?, g.mul(input, candidate)?)?;
        Ok(vec![g.mul(output, g.tanh(c)?)?, c])
    })?;
    g.sequence_last(states[0])
}

/// Trains the row reader on the data in `dir` and returns the epoch records; writes the
/// trained model as ONNX to `export` if given.
pub fn train(
    ctx: &Context,
    model: &str,
    dir: &std::path::Path,
    seed: u64,
    orthogonal: bool,
    opts: &FitOptions,
    export: Option<&std::path::Path>,
) -> wgrad::Result<Vec<EpochRecord>> {
    let (train, test) = mnist::load(dir)?;
    let (train, test) = (with_lengths(train)?, with_lengths(test)?);
    let g = Graph::with_seed(seed);
    let x = g.input_sequence(mnist::IMAGES, &[28])?;
    let y = g.input(mnist::LABELS, &[10])?;
    let recurrent = match model {
        "lstm" => Sequential::new().add(Lstm {
            recurrent_init: if orthogonal {
                Init::Orthogonal { gain: 1.0 }
            } else {
                Init::GlorotUniform
            },
            ..Lstm::new(128)
        }),
        "gru" => Sequential::new().add(Gru::new(128)),
        "rnn" => Sequential::new().add(Rnn::new(128)),
        "step-lstm" => Sequential::new(),
        other => {
            return Err(wgrad::Error::Invalid(format!(
                "--model {other}: use lstm, gru, rnn or step-lstm"
            )))
        }
    };
    let pixels = g.scale(x, 1.0 / 255.0)?;
    let z = match model {
        "step-lstm" => Dense::new(10).build(&g, "dense", step_lstm(&g, pixels, 128)?)?,
        _ => recurrent.add(Last).add(Dense::new(10)).build(&g, pixels)?,
    };
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    let mut trainer = Trainer::new(ctx, &g, loss, Some(err), Learner::adam(1e-3))?;
    let inputs = [
        (mnist::IMAGES, x),
        ("lengths", g.sequence_lengths()),
        (mnist::LABELS, y),
    ];
    let records = trainer.fit(&train, Some(&test), &inputs, opts)?;
    if let Some(path) = export {
        wgrad::onnx::save(path, &g, trainer.executor(), &[("scores", z)])?;
        println!(
            "wrote {} (ONNX opset {})",
            path.display(),
            wgrad::onnx::OPSET
        );
    }
    Ok(records)
}

/// An LSTM (or GRU, RNN) reading MNIST digits as 28 rows of 28 pixels.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// The recurrent layer: lstm, gru, rnn, or step-lstm (the LSTM written as a step
    /// function for `Graph::recurrence`).
    #[arg(long, default_value = "lstm")]
    model: String,
    #[command(flatten)]
    data: mnist_example::DataArgs,
    /// Seed of the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Epochs to train.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Orthogonal recurrent weights (Keras, Flax) instead of glorot-uniform (CNTK).
    #[arg(long)]
    orthogonal: bool,
    /// Write the trained model to this ONNX file.
    #[arg(long)]
    export_onnx: Option<std::path::PathBuf>,
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let model = args.model.clone();
    let dir = mnist_example::data_dir(&args.data)?;
    let seed = args.seed;
    let opts = FitOptions {
        epochs: args.epochs,
        batch: 64,
        shuffle_seed: Some(seed),
        ..FitOptions::default()
    };
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "MNIST rows: {model}(128), data {}, {} epochs, batch 64, Adam lr 1e-3",
        dir.display(),
        opts.epochs
    );
    let orthogonal = args.orthogonal;
    let export = args.export_onnx.as_deref();
    let records = train(&ctx, &model, &dir, seed, orthogonal, &opts, export)?;
    let last = records
        .last()
        .ok_or_else(|| wgrad::Error::Invalid("no epoch was trained".into()))?;
    println!("test error: {:.2}%", 100.0 * last.test_metric);
    Ok(())
}
