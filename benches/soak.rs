//! Soak: trains the MNIST CNN of CNTK 103 for 10,000 steps (batch 64, 80 epochs of the
//! 8,000 shared digits) and reports host RSS and wgrad's live GPU buffers every 1,000 steps,
//! with an evaluation at another batch size each time. Both must stay flat after the first
//! epoch. `cargo bench --bench soak [-- STEPS]`; data from `$WGRAD_MNIST_DIR` or
//! `../shared/data/mnist-10k`.

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use std::sync::Arc;
use std::time::Instant;

use wgrad::data::{mnist, MinibatchSource};
use wgrad::{Context, Graph, Learner, Trainer};

/// Resident set size of this process, from /proc (0 where there is none).
fn rss_mb() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    (pages * 4096) as f64 / (1 << 20) as f64
}

fn main() -> wgrad::Result<()> {
    let steps: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir =
        std::env::var("WGRAD_MNIST_DIR").unwrap_or_else(|_| "../shared/data/mnist-10k".into());
    let (train, test) = mnist::load(std::path::Path::new(&dir))?;
    let ctx = Context::new()?;
    println!("soak: MNIST cnn, {steps} steps of 64 on {}", ctx.adapter());
    let g = Graph::with_seed(0);
    let (x, y, z) = mnist_example::graph(&g, "cnn")?;
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), Learner::sgd(0.2))?;
    let train = Arc::new(train);
    let inputs = [(mnist::IMAGES, x), (mnist::LABELS, y)];
    let eval = test.slice(0..500)?;
    let (mut step, mut epoch, t0) = (0u64, 0u64, Instant::now());
    println!(
        "{:>6} {:>8} {:>9} {:>12} {:>7} {:>9}",
        "step", "rss MB", "buffers", "GPU bytes", "plans", "test err"
    );
    while step < steps {
        for mb in MinibatchSource::epoch(train.clone(), 64, Some(1), epoch, 4)? {
            let feed = [(x, &mb.streams[0][..]), (y, &mb.streams[1][..])];
            t.train_minibatch_pipelined(&feed)?;
            step += 1;
            if step % 1000 == 0 {
                t.finish_minibatches()?;
                let e = t.evaluate(&eval, &inputs, 100)?;
                let m = ctx.memory();
                println!(
                    "{step:>6} {:>8.1} {:>9} {:>12} {:>7} {:>9.4}",
                    rss_mb(),
                    m.buffers,
                    m.bytes,
                    t.executor().cached_plans(),
                    e.metric.unwrap_or(f32::NAN)
                );
            }
            if step == steps {
                break;
            }
        }
        epoch += 1;
    }
    t.finish_minibatches()?;
    println!("{steps} steps in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
