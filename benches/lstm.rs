//! LSTM training throughput: one Adam step (forward scan, reverse scan, update; one submit)
//! of `mnist_rows`' model (LSTM(128) over 28 steps of 28 features, batch 64, then Dense(10))
//! and of CNTK 106A's (LSTM(5) over 5 steps, batch 100). Beside them, in the same run, a
//! plain-Rust CPU forward pass of the same LSTM (input and recurrent products through the
//! `matrixmultiply` crate's sgemm, the cell in a loop), as a floor for what the hardware does
//! without a GPU. Criterion's "elem/s" is examples/s. Each model trains with both LSTM
//! kernels in the same run (`wgrad-Scan`: one kernel looping over the steps; `wgrad-Steps`:
//! per step a tuned product and a cell kernel), whatever the adapter would pick.
//! `WGRAD_BENCH_LARGE=1` adds hidden 512, 64 steps, batch 64 (slow on CPU adapters).
//!
//! Run: `cargo bench --bench lstm`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrad::data::SequenceBatch;
use wgrad::nn::{Dense, Last, Lstm, Sequential};
use wgrad::{Context, ContextOptions, Graph, Learner, LstmKernels, Trainer};

/// (name, batch, steps, features, hidden, classes)
type Config = (&'static str, usize, usize, usize, usize, usize);

const CONFIGS: [Config; 3] = [
    ("mnist-rows h128 t28 b64", 64, 28, 28, 128, 10),
    ("sine h5 t5 b100", 100, 5, 1, 5, 1),
    ("large h512 t64 b64", 64, 64, 64, 512, 10),
];

/// A CPU forward pass of an LSTM (gate blocks g, i, f, o) over `[batch, steps, features]`.
fn cpu_lstm_forward(
    x: &[f32],
    w: &[f32],
    u: &[f32],
    (b, t, f, h): (usize, usize, usize, usize),
) -> f32 {
    let g4 = 4 * h;
    let mut z = vec![0.0f32; b * t * g4];
    // Input projections of all steps: [b·t, f] · [f, 4h].
    unsafe {
        matrixmultiply::sgemm(
            b * t,
            f,
            g4,
            1.0,
            x.as_ptr(),
            f as isize,
            1,
            w.as_ptr(),
            g4 as isize,
            1,
            0.0,
            z.as_mut_ptr(),
            g4 as isize,
            1,
        );
    }
    let (mut hs, mut cs) = (vec![0.0f32; b * h], vec![0.0f32; b * h]);
    let mut r = vec![0.0f32; b * g4];
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    for step in 0..t {
        unsafe {
            matrixmultiply::sgemm(
                b,
                h,
                g4,
                1.0,
                hs.as_ptr(),
                h as isize,
                1,
                u.as_ptr(),
                g4 as isize,
                1,
                0.0,
                r.as_mut_ptr(),
                g4 as isize,
                1,
            );
        }
        for row in 0..b {
            let zr = &z[(row * t + step) * g4..][..g4];
            let rr = &r[row * g4..][..g4];
            for j in 0..h {
                let gg = (zr[j] + rr[j]).tanh();
                let i = sig(zr[h + j] + rr[h + j]);
                let fg = sig(zr[2 * h + j] + rr[2 * h + j] + 1.0);
                let o = sig(zr[3 * h + j] + rr[3 * h + j]);
                let c = fg * cs[row * h + j] + i * gg;
                cs[row * h + j] = c;
                hs[row * h + j] = o * c.tanh();
            }
        }
    }
    hs.iter().sum()
}

fn bench(c: &mut Criterion) {
    let context = |lstm| {
        Context::with_options(ContextOptions {
            lstm,
            ..Default::default()
        })
        .expect("a wgpu adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)")
    };
    let contexts = [
        (LstmKernels::Scan, context(LstmKernels::Scan)),
        (LstmKernels::Steps, context(LstmKernels::Steps)),
    ];
    eprintln!("adapter: {}", contexts[0].1.adapter());
    let large = std::env::var("WGRAD_BENCH_LARGE").is_ok();
    let mut group = c.benchmark_group("lstm_step");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(5));
    group.warm_up_time(std::time::Duration::from_millis(500));
    for (name, b, t, f, h, classes) in CONFIGS {
        if name.starts_with("large") && !large {
            continue;
        }
        group.throughput(Throughput::Elements(b as u64));
        let g = Graph::new();
        let x = g.input_sequence("x", &[f]).unwrap();
        let y = g.input("y", &[classes]).unwrap();
        let z = Sequential::new()
            .add(Lstm::new(h))
            .add(Last)
            .add(Dense::new(classes))
            .build(&g, x)
            .unwrap();
        let loss = g.squared_error(z, y).unwrap();
        let seqs: Vec<Vec<f32>> = (0..b)
            .map(|k| {
                (0..t * f)
                    .map(|i| ((i * 7 + k) % 13) as f32 / 13.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
        let batch = SequenceBatch::pack(&refs, f).unwrap();
        let ys = vec![0.1f32; b * classes];
        let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
        feed.push((y, &ys));
        for (kernels, ctx) in &contexts {
            let mut tr = Trainer::new(ctx, &g, loss, None, Learner::adam(1e-3)).unwrap();
            tr.train_minibatch(&feed, true).unwrap();
            let id = BenchmarkId::new(format!("wgrad-{kernels:?}"), name);
            group.bench_function(id, |bch| {
                bch.iter(|| {
                    tr.train_minibatch(&feed, false).unwrap();
                    ctx.wait().unwrap();
                })
            });
            let plan = tr.executor().plan_summary(&[], &feed, true).unwrap();
            let bodies: Vec<String> = plan
                .loops
                .iter()
                .map(|l| format!("{} × {}", l.len, l.times))
                .collect();
            eprintln!(
                "{name}, {kernels:?}: {} dispatches per training step, loop bodies {bodies:?}",
                plan.len()
            );
        }
        let w: Vec<f32> = (0..f * 4 * h)
            .map(|i| ((i % 17) as f32 - 8.0) / 80.0)
            .collect();
        let u: Vec<f32> = (0..h * 4 * h)
            .map(|i| ((i % 19) as f32 - 9.0) / 90.0)
            .collect();
        group.bench_function(BenchmarkId::new("cpu-forward-only", name), |bch| {
            bch.iter(|| cpu_lstm_forward(batch.values(), &w, &u, (b, t, f, h)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
