//! Training throughput: one full SGD step (forward, backward, update; one submit) of each
//! CNTK 103 MNIST model at batch 64, waited for alone ("wgrad", no readback) and pipelined
//! as `Trainer::fit` runs it ("wgrad-pipelined": the loss of each step read back while the
//! next one runs). Criterion's "elem/s" is examples/s.
//! Dispatches per step, host encode time per step and the memory of the step's intermediate
//! buffers (reused by liveness) are printed beside it.
//!
//! Run: `cargo bench --bench train`

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrad::{Context, Graph, Learner, Trainer};

const BATCH: usize = 64;

fn bench(c: &mut Criterion) {
    let ctx = Context::new()
        .expect("a wgpu adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", ctx.adapter());
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(4));
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.throughput(Throughput::Elements(BATCH as u64));
    for kind in ["logreg", "mlp", "cnn", "cnn-pool"] {
        let g = Graph::new();
        let (x, y, z) = mnist::graph(&g, kind).unwrap();
        let loss = g.cross_entropy_with_softmax(z, y).unwrap();
        let mut t = Trainer::new(&ctx, &g, loss, None, Learner::sgd(0.01)).unwrap();
        let xs: Vec<f32> = (0..BATCH * 784).map(|i| (i * 7 % 256) as f32).collect();
        let ys: Vec<f32> = (0..BATCH * 10)
            .map(|i| (i % 11 == 0) as u8 as f32)
            .collect();
        let feed = [(x, &xs[..]), (y, &ys[..])];
        t.train_minibatch(&feed, true).unwrap();
        let mut encode = std::time::Duration::ZERO;
        let mut steps = 0u32;
        group.bench_function(BenchmarkId::new("wgrad", kind), |b| {
            b.iter(|| {
                t.train_minibatch(&feed, false).unwrap();
                encode += t.executor().last_encode_time();
                steps += 1;
                ctx.wait().unwrap();
            })
        });
        // The fit loop's pattern: each step's loss read back while the next step runs.
        group.bench_function(BenchmarkId::new("wgrad-pipelined", kind), |b| {
            b.iter(|| t.train_minibatch_pipelined(&feed).unwrap())
        });
        t.finish_minibatches().unwrap();
        eprintln!(
            "{kind}: {} dispatches per step, host encode {:.1} µs per step, intermediate buffers {:.2} MB (parameters and inputs not counted)",
            t.executor().max_dispatches(),
            encode.as_secs_f64() * 1e6 / steps.max(1) as f64,
            t.executor().peak_scratch_bytes() as f64 / 1e6
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
