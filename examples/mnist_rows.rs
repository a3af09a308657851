//! An LSTM reading MNIST digits row by row: 28 steps of 28 pixels, LSTM(128) → last →
//! Dense(10), Adam lr 1e-3, batch 64, 10 epochs.
//!
//! ```text
//! cargo run --release --example mnist_rows -- --data ../shared/data/mnist-10k
//! ```
//! Options: `--data DIR` (IDX files, raw or .gz; default `$WGRAD_MNIST_DIR` or
//! `../shared/data/mnist-10k`), `--epochs N` (10), `--seed N` (0), `--model lstm|gru|rnn`,
//! `--orthogonal` (the LSTM's recurrent weights start orthogonal, as in Keras and Flax,
//! instead of glorot-uniform as in CNTK).

use std::path::PathBuf;

use wgrad::data::{mnist, Dataset};
use wgrad::nn::{Dense, Gru, Last, Lstm, Rnn, Sequential};
use wgrad::{Context, EpochRecord, FitOptions, Graph, Init, Learner, Trainer};

/// The dataset with a `lengths` stream: every digit is a sequence of 28 rows.
fn with_lengths(d: Dataset) -> wgrad::Result<Dataset> {
    let n = d.len();
    d.with_stream("lengths", 1, vec![28.0; n])
}

/// Trains the row reader on the data in `dir` and returns the epoch records.
pub fn train(
    ctx: &Context,
    model: &str,
    dir: &std::path::Path,
    seed: u64,
    orthogonal: bool,
    opts: &FitOptions,
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
        other => {
            return Err(wgrad::Error::Invalid(format!(
                "--model {other}: use lstm, gru or rnn"
            )))
        }
    };
    let z = recurrent
        .add(Last)
        .add(Dense::new(10))
        .build(&g, g.scale(x, 1.0 / 255.0)?)?;
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    let mut trainer = Trainer::new(ctx, &g, loss, Some(err), Learner::adam(1e-3))?;
    let inputs = [
        (mnist::IMAGES, x),
        ("lengths", g.sequence_lengths()),
        (mnist::LABELS, y),
    ];
    trainer.fit(&train, Some(&test), &inputs, opts)
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |flag: &str, default: usize| -> wgrad::Result<usize> {
        get(flag).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| wgrad::Error::Invalid(format!("{flag} needs a number, got {v}")))
        })
    };
    let model = get("--model").unwrap_or_else(|| "lstm".into());
    let dir = get("--data")
        .or_else(|| std::env::var("WGRAD_MNIST_DIR").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/mnist-10k"));
    let seed = num("--seed", 0)? as u64;
    let opts = FitOptions {
        epochs: num("--epochs", 10)?,
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
    let orthogonal = args.iter().any(|a| a == "--orthogonal");
    let records = train(&ctx, &model, &dir, seed, orthogonal, &opts)?;
    let last = records
        .last()
        .ok_or_else(|| wgrad::Error::Invalid("no epoch was trained".into()))?;
    println!("test error: {:.2}%", 100.0 * last.test_metric);
    Ok(())
}
