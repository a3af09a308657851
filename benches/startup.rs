//! Start-up time, as a user meets it: from process start to the end of the first training
//! step of an MNIST model (batch 64, then the first evaluation batch), with Mesa's shader
//! cache cold (`MESA_SHADER_CACHE_DISABLE=true`, a user's first run on a machine) and warm
//! (the same cache directory, filled by an earlier run).
//!
//! Each figure is a fresh process: this bench runs itself as the child (`--child MODEL`),
//! which prints the time of each phase; the parent reports the median of the runs.
//!
//! Run: `cargo bench --bench startup` (models: `-- cnn mlp`, runs: `WGRAD_STARTUP_RUNS=5`).

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist;

use std::process::Command;
use std::time::Instant;

use wgrad::{Context, Graph, Learner, Trainer};

const BATCH: usize = 64;

/// The child: one model from nothing to its first step, each phase timed from `start`.
fn child(kind: &str, start: Instant) -> wgrad::Result<()> {
    let ctx = Context::new()?;
    let t_context = start.elapsed();
    let g = Graph::new();
    let (x, y, z) = mnist::graph(&g, kind)?;
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let error = g.classification_error(z, y)?;
    let mut t = Trainer::new(&ctx, &g, loss, Some(error), Learner::sgd(0.01))?;
    let t_trainer = start.elapsed();
    let xs: Vec<f32> = (0..BATCH * 784).map(|i| (i * 7 % 256) as f32).collect();
    let ys: Vec<f32> = (0..BATCH * 10)
        .map(|i| (i % 11 == 0) as u8 as f32)
        .collect();
    let feed = [(x, &xs[..]), (y, &ys[..])];
    t.train_minibatch(&feed, true)?;
    let t_step = start.elapsed();
    t.evaluate_minibatch(&feed)?;
    let t_eval = start.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "phases {:.0} {:.0} {:.0} {:.0} pipelines {} adapter {}",
        ms(t_context),
        ms(t_trainer),
        ms(t_step),
        ms(t_eval),
        ctx.pipelines_compiled(),
        ctx.adapter().name
    );
    Ok(())
}

/// Runs the child `runs` times and returns its phase times (ms) per run.
fn measure(kind: &str, cold: bool, cache: &std::path::Path, runs: usize) -> Vec<[f64; 4]> {
    let exe = std::env::current_exe().expect("the bench's own path");
    (0..runs)
        .map(|_| {
            let mut cmd = Command::new(&exe);
            cmd.args(["--child", kind])
                .env("MESA_SHADER_CACHE_DIR", cache)
                .env("XDG_CACHE_HOME", cache);
            if cold {
                cmd.env("MESA_SHADER_CACHE_DISABLE", "true");
            }
            let out = cmd.output().expect("running the child");
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("phases"))
                .unwrap_or_else(|| {
                    panic!(
                        "the child printed no phases: {text}{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
            let v: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .take(4)
                .map(|s| s.parse().unwrap())
                .collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let start = Instant::now();
    if args.first().map(String::as_str) == Some("--child") {
        if let Err(e) = child(&args[1], start) {
            eprintln!("startup child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let runs: usize = std::env::var("WGRAD_STARTUP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // cargo bench passes `--bench`; anything else names models.
    let kinds: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let kinds = if kinds.is_empty() {
        vec!["cnn", "mlp"]
    } else {
        kinds
    };
    let cache = std::env::temp_dir().join(format!("wgrad-startup-cache-{}", std::process::id()));
    println!("time from process start, ms (median of {runs} processes): context, trainer built, first step done, first evaluation done");
    for kind in kinds {
        let _ = std::fs::remove_dir_all(&cache);
        for (label, cold) in [("cold", true), ("warm", false)] {
            if !cold {
                measure(kind, false, &cache, 1); // fills the cache
            }
            let r = measure(kind, cold, &cache, runs);
            let m: Vec<f64> = (0..4)
                .map(|i| median(r.iter().map(|p| p[i]).collect()))
                .collect();
            println!(
                "{kind:>8} {label}: context {:>6.0}  trainer {:>6.0}  first step {:>6.0}  first eval {:>6.0}",
                m[0], m[1], m[2], m[3]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
}
