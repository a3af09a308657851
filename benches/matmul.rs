//! matmul throughput through wgrad, beside the `matrixmultiply` crate's sgemm on the same
//! CPU in the same run. Criterion's "elem/s" is FLOP/s here (2·M·N·K per product).
//!
//! Run: `cargo bench --bench matmul`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrad::{Context, Executor, Graph, Init};

/// (name, M, K, N): square sizes and the first layer of the MNIST MLP at batch 64.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("256", 256, 256, 256),
    ("512", 512, 512, 512),
    ("1024", 1024, 1024, 1024),
    ("mlp1 64x784x400", 64, 784, 400),
];

fn bench(c: &mut Criterion) {
    let ctx = Context::new()
        .expect("a wgpu adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", ctx.adapter());
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(3));
    group.warm_up_time(std::time::Duration::from_millis(500));
    for (name, m, k, n) in SHAPES {
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));

        // wgrad: both operands are parameters, so nothing is uploaded per iteration.
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
        let mut ex = Executor::new(&ctx, &g).unwrap();
        ex.launch(&[prod], &[]).unwrap();
        ctx.wait().unwrap();
        group.bench_function(BenchmarkId::new("wgrad", name), |bench| {
            bench.iter(|| {
                ex.launch(&[prod], &[]).unwrap();
                ctx.wait().unwrap();
            })
        });

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
