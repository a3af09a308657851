//! conv2d throughput (implicit GEMM: matrix products reading the image through the window; the
//! input gradient through col2im), forward and forward+backward, for the layers of the
//! MNIST CNNs at batch 64 and a 3×3, 64→64 channel, 56×56 layer at batch 32. Criterion's
//! "elem/s" is FLOP/s (2 per multiply-add; backward counts the input and filter gradients).
//! On CPU adapters, the "-storage" rows read every operand from storage buffers instead of
//! textures (`OperandTextures::Never`).
//!
//! Run: `cargo bench --bench conv`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrad::{Context, ContextOptions, Executor, Graph, Init, OperandTextures, Padding, WindowOpts};

/// (name, batch, in channels, size, out channels, kernel, stride, padding)
type Layer = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    Padding,
);

const LAYERS: [Layer; 5] = [
    ("cnn conv1 1→8 5x5 s2", 64, 1, 28, 8, 5, 2, Padding::Same),
    ("cnn conv2 8→16 5x5 s2", 64, 8, 14, 16, 5, 2, Padding::Same),
    ("cnn-pool conv1 1→8 5x5", 64, 1, 28, 8, 5, 1, Padding::Same),
    (
        "cnn-pool conv2 8→16 5x5",
        64,
        8,
        14,
        16,
        5,
        1,
        Padding::Same,
    ),
    ("3x3 64→64 56x56 b32", 32, 64, 56, 64, 3, 1, Padding::Same),
];

fn bench(c: &mut Criterion) {
    let ctx = Context::new()
        .expect("a wgpu adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", ctx.adapter());
    // On CPU adapters, also with every operand read from storage buffers ("-storage").
    let storage = Context::with_options(ContextOptions {
        textures: OperandTextures::Never,
        ..Default::default()
    })
    .unwrap();
    let variants: Vec<(&str, &Context)> = if ctx.is_cpu() {
        vec![("", &ctx), ("-storage", &storage)]
    } else {
        vec![("", &ctx)]
    };
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(3));
    group.warm_up_time(std::time::Duration::from_millis(300));
    for (name, n, ci, hw, co, k, s, pad) in LAYERS {
        let g = Graph::new();
        let x = g
            .parameter(
                "x",
                &[n, ci, hw, hw],
                Init::Uniform {
                    low: -1.0,
                    high: 1.0,
                },
            )
            .unwrap();
        let w = g
            .parameter("w", &[co, ci, k, k], Init::GlorotUniform)
            .unwrap();
        let y = g
            .conv2d(x, w, None, WindowOpts::default().stride(s).padding(pad))
            .unwrap();
        let oh = g.shape(y).resolve(1)[2];
        let macs = (n * co * oh * oh * ci * k * k) as u64;
        let grads = g.grad(g.reduce_sum(y, &[]).unwrap(), &[x, w]).unwrap();
        // The gradients of Σy do not need y itself: ask for it too.
        let step = [vec![y], grads].concat();
        for &(variant, ctx) in &variants {
            let mut ex = Executor::new(ctx, &g).unwrap();
            for (label, outputs, flops) in [
                ("forward", vec![y], 2 * macs),
                ("fwd+bwd", step.clone(), 6 * macs),
            ] {
                let label = format!("{label}{variant}");
                if let Err(e) = ex.launch(&outputs, &[]) {
                    eprintln!("{name} {label}: not run: {e}");
                    continue;
                }
                ctx.wait().unwrap();
                group.throughput(Throughput::Elements(flops));
                group.bench_function(BenchmarkId::new(label, name), |b| {
                    b.iter(|| {
                        ex.launch(&outputs, &[]).unwrap();
                        ctx.wait().unwrap();
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
