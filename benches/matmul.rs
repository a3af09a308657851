//! matmul throughput through wgrad, beside the `matrixmultiply` crate's sgemm on the same
//! CPU in the same run. Criterion's "elem/s" is FLOP/s here (2·M·N·K per product).
//! On CPU adapters, "wgrad-storage" is the same product with its operands read from storage
//! buffers instead of textures (`OperandTextures::Never`), up to 1024³.
//!
//! Run: `cargo bench --bench matmul`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrad::{Context, ContextOptions, Executor, Graph, Init, OperandTextures};

/// (name, M, K, N): square sizes and products of the MNIST models at batch 64 (the MLP's
/// layers, the CNN's dense layer, and the CNN's second convolution as one product over the
/// batch: 16 filters × 200 taps × 64·49 positions).
const SHAPES: [(&str, usize, usize, usize); 8] = [
    ("256", 256, 256, 256),
    ("512", 512, 512, 512),
    ("1024", 1024, 1024, 1024),
    ("2048", 2048, 2048, 2048),
    ("mlp1 64x784x400", 64, 784, 400),
    ("mlp2 64x400x400", 64, 400, 400),
    ("cnn dense 64x784x10", 64, 784, 10),
    ("cnn conv2 16x200x3136", 16, 200, 3136),
];

/// Run only where `WGRAD_BENCH_LARGE` is set (real GPUs): 137 GFLOP per product.
const LARGE: (&str, usize, usize, usize) = ("4096", 4096, 4096, 4096);

fn bench(c: &mut Criterion) {
    let ctx = Context::new()
        .expect("a wgpu adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", ctx.adapter());
    let storage = Context::with_options(ContextOptions {
        textures: OperandTextures::Never,
        ..Default::default()
    })
    .unwrap();
    let variants: Vec<(&str, &Context)> = if ctx.is_cpu() {
        vec![("wgrad", &ctx), ("wgrad-storage", &storage)]
    } else {
        vec![("wgrad", &ctx)]
    };
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(3));
    group.warm_up_time(std::time::Duration::from_millis(500));
    let large = std::env::var_os("WGRAD_BENCH_LARGE").map(|_| LARGE);
    for (name, m, k, n) in SHAPES.into_iter().chain(large) {
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));

        // wgrad: both operands are parameters, so nothing is uploaded per iteration.
        // (The storage kernel at 2048³ and above would add half a minute per shape.)
        for &(variant, ctx) in variants.iter().filter(|v| v.0 == "wgrad" || m < 2048) {
            let g = Graph::new();
            let a = g
                .parameter(
                    "a",
                    &[m, k],
                    Init::Uniform {
                        low: -1.0,
                        high: 1.0,
                    },
                )
                .unwrap();
            let b = g
                .parameter(
                    "b",
                    &[k, n],
                    Init::Uniform {
                        low: -1.0,
                        high: 1.0,
                    },
                )
                .unwrap();
            let prod = g.matmul(a, b).unwrap();
            let mut ex = Executor::new(ctx, &g).unwrap();
            ex.launch(&[prod], &[]).unwrap();
            ctx.wait().unwrap();
            group.bench_function(BenchmarkId::new(variant, name), |bench| {
                bench.iter(|| {
                    ex.launch(&[prod], &[]).unwrap();
                    ctx.wait().unwrap();
                })
            });
        }

        // CPU baseline: matrixmultiply's sgemm (threaded).
        let av: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut cv = vec![0.0f32; m * n];
        group.bench_function(BenchmarkId::new("cpu-sgemm", name), |bench| {
            bench.iter(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    av.as_ptr(),
                    k as isize,
                    1,
                    bv.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    cv.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
