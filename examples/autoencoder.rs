//! CNTK tutorial 105, a simple autoencoder, on wgrad: MNIST digits (pixels / 255) through
//! Dense(32, relu) → Dense(784), trained with binary cross-entropy on the logits (a sigmoid
//! output), Adam, batch 64. Prints the test loss (summed over a digit's 784 pixels, and per
//! pixel) and writes a PNG grid: test digits on the left, their reconstructions on the right.
//!
//! ```text
//! cargo run --release --example autoencoder -- --grid autoencoder.png
//! ```

#[path = "mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use std::path::PathBuf;

use wgrad::data::mnist;
use wgrad::nn::{Dense, Sequential};
use wgrad::{Context, FitOptions, Graph, Learner, NodeId, Trainer};

/// CNTK 105: an MNIST autoencoder 784 → 32 → 784 with binary cross-entropy.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    #[command(flatten)]
    data: mnist_example::DataArgs,
    /// Epochs to train.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Seed of the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the grid of digits and reconstructions.
    #[arg(long, default_value = "autoencoder.png")]
    grid: PathBuf,
}

/// The autoencoder: input `images` [batch, 784] (0..255); returns (images, per-image loss,
/// reconstruction in 0..1).
pub fn graph(g: &Graph) -> wgrad::Result<(NodeId, NodeId, NodeId)> {
    let x = g.input("images", &[784])?;
    let target = g.scale(x, 1.0 / 255.0)?;
    let logits = Sequential::new()
        .add(Dense::new(32).relu())
        .add(Dense::new(784))
        .build(g, target)?;
    let loss = g.reduce_sum(g.binary_cross_entropy_with_logits(logits, target)?, &[1])?;
    Ok((x, loss, g.sigmoid(logits)?))
}

/// Trains on the data in `dir`; returns the trainer, the nodes and the mean test loss per
/// image.
pub fn train(
    ctx: &Context,
    dir: &std::path::Path,
    lr: f32,
    seed: u64,
    opts: &FitOptions,
) -> wgrad::Result<(Trainer, NodeId, NodeId, f32)> {
    let (train, test) = mnist::load(dir)?;
    let g = Graph::with_seed(seed);
    let (x, loss, out) = graph(&g)?;
    let mut t = Trainer::new(ctx, &g, loss, None, Learner::adam(lr))?;
    t.fit(&train, Some(&test), &[(mnist::IMAGES, x)], opts)?;
    let test_loss = t.evaluate(&test, &[(mnist::IMAGES, x)], 250)?.loss;
    Ok((t, x, out, test_loss))
}

/// A PNG of `n` digits (rows of 0..255 pixels) beside their reconstructions (0..1), one
/// pair per row.
fn write_grid(
    path: &std::path::Path,
    digits: &[f32],
    recon: &[f32],
    n: usize,
) -> wgrad::Result<()> {
    let (w, h) = (2 * 28 + 4, n * 28 + 2 * (n - 1));
    let mut rgb = vec![255u8; w * h * 3];
    for k in 0..n {
        for (side, img, scale) in [(0, digits, 1.0), (1, recon, 255.0)] {
            for r in 0..28 {
                for c in 0..28 {
                    let v = (img[k * 784 + r * 28 + c] * scale).clamp(0.0, 255.0) as u8;
                    let at = ((k * 30 + r) * w + side * 32 + c) * 3;
                    rgb[at..at + 3].fill(255 - v);
                }
            }
        }
    }
    wgrad::plot::write_png(path, w as u32, h as u32, &rgb)
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let dir = mnist_example::data_dir(&args.data)?;
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "CNTK 105: 784 → Dense(32, relu) → Dense(784, sigmoid), BCE, Adam lr {}, batch 64, {} epochs",
        args.lr, args.epochs
    );
    let opts = FitOptions {
        epochs: args.epochs,
        batch: 64,
        shuffle_seed: Some(args.seed),
        ..FitOptions::default()
    };
    let (mut t, x, out, test_loss) = train(&ctx, &dir, args.lr, args.seed, &opts)?;
    println!(
        "test loss: {test_loss:.2} per digit ({:.4} per pixel)",
        test_loss / 784.0
    );
    let (_, test) = mnist::load(&dir)?;
    let n = 10;
    let digits = &test.stream(mnist::IMAGES).expect("images")[..n * 784];
    let recon = t.eval(&[out], &[(x, digits)])?.remove(0);
    write_grid(&args.grid, digits, &recon, n)?;
    println!("wrote {}", args.grid.display());
    Ok(())
}
