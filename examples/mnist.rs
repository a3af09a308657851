//! CNTK tutorial 103 on MNIST: logistic regression, an MLP and two CNNs, trained with SGD.
//!
//! ```text
//! cargo run --release --example mnist -- --model cnn --data ../shared/data/mnist-10k
//! ```
//! `--help` lists the options: the model (logreg, mlp, cnn, cnn-pool), the data directory,
//! epochs, batch, learning rate, seed, a checkpoint to resume from, CSV and PNG outputs, and
//! `--export-onnx FILE`, which writes the trained model as ONNX (input `images`, output
//! `scores`) for onnxruntime, PyTorch or tract.
//!
//! Data-parallel over MPI (feature `mpi`), each rank training on `--batch` samples per step:
//!
//! ```text
//! mpirun -np 2 cargo run --release --example mnist --features mpi -- --distributed --model cnn
//! ```

use std::path::PathBuf;

use wgrad::data::mnist;
use wgrad::distributed::{Communicator, DataParallelOptions};
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
    let g = Graph::with_seed(seed);
    let (records, trainer, _) = train_graph(ctx, dir, &g, kind, lr, opts)?;
    Ok((records, trainer))
}

/// [`train`] on a graph of the caller's; also returns the scores node.
pub fn train_graph(
    ctx: &Context,
    dir: &std::path::Path,
    g: &Graph,
    kind: &str,
    lr: f32,
    opts: &FitOptions,
) -> wgrad::Result<(Vec<EpochRecord>, Trainer, NodeId)> {
    train_graph_on(ctx, dir, g, kind, lr, opts, None)
}

/// [`train_graph`], data-parallel over a communicator when given (each rank trains on
/// `opts.batch` samples of every step).
#[allow(dead_code)]
pub fn train_graph_on(
    ctx: &Context,
    dir: &std::path::Path,
    g: &Graph,
    kind: &str,
    lr: f32,
    opts: &FitOptions,
    parallel: Option<(Box<dyn Communicator>, DataParallelOptions)>,
) -> wgrad::Result<(Vec<EpochRecord>, Trainer, NodeId)> {
    let (train, test) = mnist::load(dir)?;
    let (x, y, z) = graph(g, kind)?;
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    let learner = Learner::sgd(lr);
    let mut trainer = match parallel {
        Some((comm, options)) => {
            Trainer::data_parallel_with(ctx, g, loss, Some(err), learner, comm, options)?
        }
        None => Trainer::new(ctx, g, loss, Some(err), learner)?,
    };
    let records = trainer.fit(
        &train,
        Some(&test),
        &[(mnist::IMAGES, x), (mnist::LABELS, y)],
        opts,
    )?;
    Ok((records, trainer, z))
}

/// CNTK 103 on MNIST: logistic regression, an MLP and two CNNs, trained with SGD.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// The model: logreg, mlp, cnn or cnn-pool.
    #[arg(long, default_value = "cnn")]
    model: String,
    #[command(flatten)]
    data: DataArgs,
    /// Epochs to train.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.2)]
    lr: f32,
    /// Seed of the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint file, written each epoch and resumed from when it exists.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// CSV file of the per-epoch records.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// PNG file of the training curves.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// ONNX file to write the trained model to: input `images` [batch, 784] (0..255),
    /// output `scores` [batch, 10].
    #[arg(long)]
    export_onnx: Option<PathBuf>,
    /// Data-parallel training over MPI: start with `mpirun -np N` (feature `mpi`); each
    /// rank trains on `--batch` samples of every step, rank 0 prints and writes the files.
    #[arg(long)]
    distributed: bool,
    /// With `--distributed`: all-reduce gradients in buckets of about this many floats.
    #[arg(long, default_value_t = DataParallelOptions::default().bucket_floats)]
    bucket_floats: usize,
    /// With `--distributed`: all-reduce only after the whole backward pass.
    #[arg(long)]
    no_overlap: bool,
}

/// Where the MNIST examples read their data (`--data`, `--download`).
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// Directory of the IDX files (raw or .gz); default `$WGRAD_MNIST_DIR` or
    /// `../shared/data/mnist-10k`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// First download the full MNIST (70,000 digits, SHA-256 checked) into the data
    /// directory (default `data/mnist`).
    #[arg(long)]
    pub download: bool,
}

/// The MNIST directory of the examples: `--data`, else `$WGRAD_MNIST_DIR`, else `data/mnist`
/// when downloading and `../shared/data/mnist-10k` otherwise; with `--download`, the full
/// MNIST is fetched there first (kept when already there).
pub fn data_dir(args: &DataArgs) -> wgrad::Result<PathBuf> {
    let download = args.download;
    let dir = args
        .data
        .clone()
        .or_else(|| std::env::var("WGRAD_MNIST_DIR").ok().map(PathBuf::from))
        .unwrap_or_else(|| match download {
            true => PathBuf::from("data/mnist"),
            false => PathBuf::from("../shared/data/mnist-10k"),
        });
    if download {
        println!("downloading MNIST into {} (if not there)", dir.display());
        mnist::download(&dir)?;
    }
    Ok(dir)
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    match args.distributed {
        true => distributed(&args),
        false => run(&args, None),
    }
}

/// `--distributed`: every rank of the MPI job runs [`run`] over MPI's world.
#[cfg(feature = "mpi")]
#[allow(dead_code)]
fn distributed(args: &Args) -> wgrad::Result<()> {
    wgrad::distributed::mpi::run(|world| run(args, Some(Box::new(world))))
}

#[cfg(not(feature = "mpi"))]
#[allow(dead_code)]
fn distributed(_: &Args) -> wgrad::Result<()> {
    Err(wgrad::Error::Invalid(
        "--distributed needs the mpi feature: mpirun -np 2 cargo run --release --example \
         mnist --features mpi -- --distributed"
            .into(),
    ))
}

/// Trains as `args` say, over `comm` when given; rank 0 alone prints.
#[allow(dead_code)]
fn run(args: &Args, comm: Option<Box<dyn Communicator>>) -> wgrad::Result<()> {
    let options = DataParallelOptions {
        bucket_floats: args.bucket_floats,
        overlap: !args.no_overlap,
        ..Default::default()
    };
    let kind = args.model.clone();
    let dir = data_dir(&args.data)?;
    let opts = FitOptions {
        epochs: args.epochs,
        batch: args.batch,
        shuffle_seed: Some(args.seed),
        checkpoint: args.checkpoint.clone(),
        resume: true,
        metrics_csv: args.csv.clone(),
        plot_png: args.plot.clone(),
        ..FitOptions::default()
    };
    let ctx = Context::new()?;
    let root = comm.as_ref().is_none_or(|c| c.is_root());
    let ranks = comm.as_ref().map_or(1, |c| c.size());
    let parallel = comm.map(|c| (c, options));
    if root {
        println!("adapter: {}", ctx.adapter());
        println!(
            "model {kind}, data {}, {} epochs, batch {} on each of {ranks} rank(s), SGD lr {}",
            dir.display(),
            opts.epochs,
            opts.batch,
            args.lr
        );
    }
    let g = Graph::with_seed(args.seed);
    let (records, mut trainer, scores) =
        train_graph_on(&ctx, &dir, &g, &kind, args.lr, &opts, parallel)?;
    let last = records
        .last()
        .ok_or_else(|| wgrad::Error::Invalid("no epoch was trained".into()))?;
    if !root {
        return Ok(());
    }
    println!("test error: {:.2}%", 100.0 * last.test_metric);
    if let Some(t) = trainer.exchange_timing() {
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / t.steps.max(1) as f64;
        println!(
            "per step: forward, backward and all-reduce {:.2} ms (in all-reduces {:.2} ms, \
             {} floats in {} buckets), update {:.2} ms",
            per(t.exchange),
            per(t.all_reduce),
            t.floats_per_step,
            t.buckets,
            per(t.update)
        );
    }
    if let Some(path) = &args.export_onnx {
        wgrad::onnx::save(path, &g, trainer.executor(), &[("scores", scores)])?;
        println!(
            "wrote {} (ONNX opset {})",
            path.display(),
            wgrad::onnx::OPSET
        );
    }
    Ok(())
}
