//! Prints where the time of one training step of an MNIST model goes, dispatch by dispatch.
//! `cargo run --release --example profile_step -- cnn` (slowest first; `--in-order` lists
//! every dispatch in step order instead). `rows` profiles `mnist_rows`' LSTM(128) over 28
//! steps instead of an MNIST model of examples/mnist.rs, and `g2p` the encoder-decoder of
//! examples/g2p.rs on 128 words of 8 letters and 7 phonemes.
//!
//! Each dispatch is repeated 20 times in one submit and its mean time printed, so the
//! synchronisation of a submit is spread thin; `cargo bench --bench train` gives the step
//! throughput.

#[path = "g2p.rs"]
#[allow(dead_code)]
mod g2p;
#[path = "mnist.rs"]
#[allow(dead_code)]
mod mnist;

use wgrad::nn::{Dense, Last, Lstm, Sequential};
use wgrad::{Context, Graph, Learner, Trainer};

/// Where the time of one training step goes, dispatch by dispatch.
#[derive(clap::Parser, Debug)]
struct Args {
    /// logreg, mlp, cnn, cnn-pool (examples/mnist.rs), rows (mnist_rows' LSTM) or g2p.
    #[arg(default_value = "cnn")]
    model: String,
    /// List every dispatch in step order instead of slowest first.
    #[arg(long)]
    in_order: bool,
}

fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let kind = args.model.clone();

    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    if kind == "g2p" {
        return profile_g2p(&ctx, args.in_order);
    }
    let g = Graph::new();
    let (x, y, z) = if kind == "rows" {
        let x = g.input_sequence("x", &[28])?;
        let z = Sequential::new()
            .add(Lstm::new(128))
            .add(Last)
            .add(Dense::new(10))
            .build(&g, x)?;
        (x, g.input("y", &[10])?, z)
    } else {
        mnist::graph(&g, &kind)?
    };
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let metric = g.classification_error(z, y)?;
    let mut t = Trainer::new(&ctx, &g, loss, Some(metric), Learner::sgd(0.01))?;
    let xs: Vec<f32> = (0..64 * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    let ys: Vec<f32> = (0..640).map(|i| (i % 11 == 0) as u8 as f32).collect();
    let lengths = vec![28.0f32; 64];
    let mut feed = vec![(x, &xs[..]), (y, &ys[..])];
    if kind == "rows" {
        feed.push((g.sequence_lengths(), &lengths[..]));
    }
    t.train_minibatch(&feed, true)?;
    let steps = t.executor().profile(&[loss, metric], &feed, true)?;
    print_profile(&steps, args.in_order);
    Ok(())
}

/// One training step of the G2P model, dispatch by dispatch.
fn profile_g2p(ctx: &Context, in_order: bool) -> wgrad::Result<()> {
    let cfg = g2p::Config::default();
    let words: Vec<wgrad::data::cmudict::Pronunciation> = (0..cfg.batch)
        .map(|k| wgrad::data::cmudict::Pronunciation {
            word: String::new(),
            letters: (0..8).map(|i| ((k + i) % 26) as u8).collect(),
            phonemes: (0..7).map(|i| ((k * 3 + i) % 39) as u8).collect(),
        })
        .collect();
    let refs: Vec<_> = words.iter().collect();
    let m = g2p::model(&cfg, 0)?;
    let batch = g2p::pack(&refs, cfg.steps)?;
    let feed = m.feed(&batch, true);
    let mut t = Trainer::new(ctx, &m.g, m.loss, None, Learner::adam(1e-3))?;
    t.train_minibatch(&feed, true)?;
    let steps = t.executor().profile(&[m.loss], &feed, true)?;
    print_profile(&steps, in_order);
    Ok(())
}

/// Prints the dispatches' times, slowest first unless `--in-order`.
fn print_profile(steps: &[(String, f64)], in_order: bool) {
    let total: f64 = steps.iter().map(|s| s.1).sum();
    let mut rows = steps.to_vec();
    if !in_order {
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    let shown = std::env::var("PROFILE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for (label, secs) in rows.iter().take(shown) {
        println!("{:8.3} ms  {label}", secs * 1e3);
    }
    println!(
        "{} dispatches, {:.2} ms in total (each timed alone)",
        steps.len(),
        total * 1e3
    );
}
