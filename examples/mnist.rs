//! CNTK tutorial 103 on MNIST: logistic regression, an MLP and two CNNs, trained with SGD.
//!
//! ```text
//! cargo run --release --example mnist -- --model cnn --data ../shared/data/mnist-10k
//! ```
//! Options: `--model logreg|mlp|cnn|cnn-pool` (default cnn), `--data DIR` (IDX files, raw or
//! .gz; default `$WGRAD_MNIST_DIR` or `../shared/data/mnist-10k`), `--epochs N` (10),
//! `--batch N` (64), `--lr X` (0.2), `--seed N` (0), `--checkpoint FILE` (resumes from it when
//! it exists), `--csv FILE`, `--plot FILE.png`.

use std::path::PathBuf;

use wgrad::data::mnist;
use wgrad::nn::{Conv2d, Dense, MaxPool2d, Sequential};
use wgrad::{Context, EpochRecord, FitOptions, Graph, Learner, NodeId, Shape, Trainer};

/// The four configurations of CNTK 103.
pub fn model(kind: &str) -> wgrad::Result<Sequential> {
    Ok(match kind {
        "logreg" => Sequential::new().add(Dense::new(10)),
        "mlp" => Sequential::new()
            .add(Dense::new(400).relu())
            .add(Dense::new(400).relu())
            .add(Dense::new(10)),
        "cnn" => Sequential::new()
            .add(Conv2d::new(8, (5, 5)).stride(2).same().relu())
            .add(Conv2d::new(16, (5, 5)).stride(2).same().relu())
            .add(Dense::new(10)),
        "cnn-pool" => Sequential::new()
            .add(Conv2d::new(8, (5, 5)).same().relu())
            .add(MaxPool2d::new(2, 2))
            .add(Conv2d::new(16, (5, 5)).same().relu())
            .add(MaxPool2d::new(3, 3))
            .add(Dense::new(10)),
        other => {
            return Err(wgrad::Error::Invalid(format!(
                "unknown model {other}: use logreg, mlp, cnn or cnn-pool"
            )))
        }
    })
}

/// The graph of a model: inputs `images` [batch, 784] (0..255) and `labels` [batch, 10];
/// returns (images, labels, scores).
pub fn graph(g: &Graph, kind: &str) -> wgrad::Result<(NodeId, NodeId, NodeId)> {
    let x = g.input("images", &[784])?;
    let y = g.input("labels", &[10])?;
    let scaled = g.scale(x, 1.0 / 255.0)?;
    let input = if kind.starts_with("cnn") {
        g.reshape(scaled, Shape::batched(&[1, 28, 28]))?
    } else {
        scaled
    };
    let z = model(kind)?.build(g, input)?;
    Ok((x, y, z))
}

/// Trains `kind` on the data in `dir` and returns the epoch records and the trainer.
pub fn train(
    ctx: &Context,
    dir: &std::path::Path,
    kind: &str,
    lr: f32,
    seed: u64,
    opts: &FitOptions,
) -> wgrad::Result<(Vec<EpochRecord>, Trainer)> {
    let (train, test) = mnist::load(dir)?;
    let g = Graph::with_seed(seed);
    let (x, y, z) = graph(&g, kind)?;
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    let mut trainer = Trainer::new(ctx, &g, loss, Some(err), Learner::sgd(lr))?;
    let records = trainer.fit(
        &train,
        Some(&test),
        &[(mnist::IMAGES, x), (mnist::LABELS, y)],
        opts,
    )?;
    Ok((records, trainer))
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
    let num = |flag: &str, default: f64| -> wgrad::Result<f64> {
        get(flag).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| wgrad::Error::Invalid(format!("{flag} needs a number, got {v}")))
        })
    };
    let kind = get("--model").unwrap_or_else(|| "cnn".into());
    let dir = get("--data")
        .or_else(|| std::env::var("WGRAD_MNIST_DIR").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/mnist-10k"));
    let opts = FitOptions {
        epochs: num("--epochs", 10.0)? as usize,
        batch: num("--batch", 64.0)? as usize,
        shuffle_seed: Some(num("--seed", 0.0)? as u64),
        checkpoint: get("--checkpoint").map(PathBuf::from),
        resume: true,
        metrics_csv: get("--csv").map(PathBuf::from),
        plot_png: get("--plot").map(PathBuf::from),
        ..FitOptions::default()
    };
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "model {kind}, data {}, {} epochs, batch {}, SGD lr {}",
        dir.display(),
        opts.epochs,
        opts.batch,
        num("--lr", 0.2)?
    );
    let (records, _) = train(
        &ctx,
        &dir,
        &kind,
        num("--lr", 0.2)? as f32,
        num("--seed", 0.0)? as u64,
        &opts,
    )?;
    let last = records
        .last()
        .ok_or_else(|| wgrad::Error::Invalid("no epoch was trained".into()))?;
    println!("test error: {:.2}%", 100.0 * last.test_metric);
    Ok(())
}
