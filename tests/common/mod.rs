//! Shared helpers for the GPU tests: a poisoning context, seeded data, f64 references and a
//! finite-difference gradient check.
#![allow(dead_code)]

use rand::{rngs::StdRng, Rng, SeedableRng};
use wgrad::{Context, ContextOptions, Executor, Graph, NodeId, Shape};

/// A context that poisons every buffer a kernel writes with NaN first. With no adapter this
/// fails with the install hint, never skips.
pub fn ctx() -> Context {
    match Context::with_options(ContextOptions {
        poison: true,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter: {e}"),
    }
}

/// Like [`ctx`] but never using subgroup operations, so that the kernels for adapters
/// without them are tested on lavapipe too.
pub fn ctx_without_subgroups() -> Context {
    match Context::with_options(ContextOptions {
        poison: true,
        no_subgroups: true,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter: {e}"),
    }
}

/// Like [`ctx`] with the given use of textures for matrix products' operands on CPU
/// adapters, so that both the texture kernel's every read path and the storage-buffer
/// subgroup kernel are tested.
pub fn ctx_with_textures(textures: wgrad::OperandTextures) -> Context {
    match Context::with_options(ContextOptions {
        poison: true,
        textures,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter: {e}"),
    }
}

/// `n` seeded uniform values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// Asserts that every element matches the reference within `tol` relative error
/// (relative to max(|want|, 1)); NaN always fails.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / w.abs().max(1.0);
        if err.is_nan() || err > tol {
            panic!("{what}: element {i}: got {g}, want {w} (relative error {err:e} > {tol:e})");
        }
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

/// Row-major strides.
pub fn strides(d: &[usize]) -> Vec<usize> {
    let mut s = vec![1; d.len()];
    for i in (0..d.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * d[i + 1];
    }
    s
}

/// numpy broadcast of shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            da.max(db)
        })
        .collect()
}

/// Element of `x` (shape `xs`) seen at flat index `i` of the broadcast shape `out`.
pub fn bcast_at(x: &[f64], xs: &[usize], out: &[usize], i: usize) -> f64 {
    let os = strides(out);
    let st = strides(xs);
    let off = out.len() - xs.len();
    let mut idx = 0;
    for ax in 0..out.len() {
        let c = (i / os[ax]) % out[ax];
        if ax >= off && xs[ax - off] != 1 {
            idx += c * st[ax - off];
        }
    }
    x[idx]
}

/// f64 reference of an elementwise binary op with broadcasting.
pub fn binary_ref(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let out = broadcast_shape(sa, sb);
    let n: usize = out.iter().product();
    (0..n)
        .map(|i| f(bcast_at(a, sa, &out, i), bcast_at(b, sb, &out, i)))
        .collect()
}

/// f64 reference of batched `op(a)·op(b)` with shapes as wgrad's matmul takes them.
pub fn matmul_ref(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
    let n = if tb { rb } else { cb };
    let batch = if sa.len() == 3 {
        sa[0]
    } else if sb.len() == 3 {
        sb[0]
    } else {
        1
    };
    let mut c = vec![0.0; batch * m * n];
    for z in 0..batch {
        let ao = if sa.len() == 3 { z * ra * ca } else { 0 };
        let bo = if sb.len() == 3 { z * rb * cb } else { 0 };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for kk in 0..k {
                    let av = if ta {
                        a[ao + kk * ca + i]
                    } else {
                        a[ao + i * ca + kk]
                    };
                    let bv = if tb {
                        b[bo + j * cb + kk]
                    } else {
                        b[bo + kk * cb + j]
                    };
                    s += av * bv;
                }
                c[z * m * n + i * n + j] = s;
            }
        }
    }
    c
}

/// f64 reference of a reduction over one axis (kept).
pub fn reduce_ref(x: &[f64], dims: &[usize], axis: usize, f: &str) -> Vec<f64> {
    let outer: usize = dims[..axis].iter().product();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..len).map(|j| x[o * len * inner + j * inner + i]);
            out.push(match f {
                "sum" => vals.sum(),
                "mean" => vals.sum::<f64>() / len as f64,
                _ => vals.fold(f64::NEG_INFINITY, f64::max),
            });
        }
    }
    out
}

/// f64 reference of (log-)softmax along an axis.
pub fn softmax_ref(x: &[f64], dims: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let outer: usize = dims[..axis].iter().product();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let m = (0..len).map(|j| x[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + (0..len).map(|j| (x[at(j)] - m).exp()).sum::<f64>().ln();
            for j in 0..len {
                y[at(j)] = if log {
                    x[at(j)] - lse
                } else {
                    (x[at(j)] - lse).exp()
                };
            }
        }
    }
    y
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Checks the gradients wgrad computes for `build` against central finite differences of
/// the f64 `reference`. Operands are fixed-shape inputs with the given shapes and data; the
/// scalar checked is Σ out · r for a random r, so every output element matters.
pub fn check_grad(
    name: &str,
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    tol: f64,
) {
    check_grad_on(&ctx(), name, shapes, data, build, reference, tol)
}

/// [`check_grad`] on a given context.
pub fn check_grad_on(
    ctx: &Context,
    name: &str,
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    tol: f64,
) {
    let g = Graph::new();
    let xs: Vec<NodeId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            g.input_with_shape(&format!("x{i}"), Shape::fixed(s))
                .unwrap()
        })
        .collect();
    let out = build(&g, &xs);
    let out_len: usize = g.shape(out).resolve(1).iter().product();
    let r_data = rand_vec(out_len, 999);
    let r = g.input_with_shape("r", g.shape(out)).unwrap();
    let loss = g.reduce_sum(g.mul(out, r).unwrap(), &[]).unwrap();
    let grads = g.grad(loss, &xs).unwrap();
    let mut ex = Executor::new(ctx, &g).unwrap();
    let mut feed: Vec<(NodeId, &[f32])> = xs.iter().zip(data).map(|(&x, d)| (x, &d[..])).collect();
    feed.push((r, &r_data));
    // Training mode: ops with a training behaviour (batch norm) are checked as trained.
    let got = ex.eval_training(&grads, &feed).unwrap();

    let r64 = to64(&r_data);
    let base: Vec<Vec<f64>> = data.iter().map(|d| to64(d)).collect();
    let l = |xs: &[Vec<f64>]| {
        reference(xs)
            .iter()
            .zip(&r64)
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    for (k, gk) in got.iter().enumerate() {
        let mut want = vec![0.0; base[k].len()];
        for (i, w) in want.iter_mut().enumerate() {
            let h = 1e-5 * base[k][i].abs().max(1.0);
            let mut p = base.clone();
            p[k][i] += h;
            let lp = l(&p);
            p[k][i] -= 2.0 * h;
            let lm = l(&p);
            *w = (lp - lm) / (2.0 * h);
        }
        assert_close(&format!("{name}: d/dx{k}"), gk, &want, tol);
    }
}

/// Window geometry for the f64 references: (kernel, stride, leading pad, dilation, output).
#[derive(Clone, Copy, Debug)]
pub struct Geo {
    pub k: (usize, usize),
    pub s: (usize, usize),
    pub p: (usize, usize),
    pub d: (usize, usize),
    pub o: (usize, usize),
}

/// f64 reference convolution of x [n, c, h, w] with w [o, c, kh, kw] (+ bias).
pub fn conv_ref(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    oc: usize,
    b: Option<&[f64]>,
    g: Geo,
) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let (oh, ow) = g.o;
    let mut y = vec![0.0; n * oc * oh * ow];
    for ni in 0..n {
        for o in 0..oc {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = b.map_or(0.0, |b| b[o]);
                    for ci in 0..c {
                        for ki in 0..g.k.0 {
                            for kj in 0..g.k.1 {
                                let ih = (i * g.s.0 + ki * g.d.0) as isize - g.p.0 as isize;
                                let iw = (j * g.s.1 + kj * g.d.1) as isize - g.p.1 as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd {
                                    s += x[((ni * c + ci) * h + ih as usize) * wd + iw as usize]
                                        * w[((o * c + ci) * g.k.0 + ki) * g.k.1 + kj];
                                }
                            }
                        }
                    }
                    y[((ni * oc + o) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    y
}

/// f64 reference pooling (max, or average over in-image elements).
pub fn pool_ref(x: &[f64], xs: [usize; 4], g: Geo, max: bool) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let (oh, ow) = g.o;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut vals = Vec::new();
                for ki in 0..g.k.0 {
                    for kj in 0..g.k.1 {
                        let ih = (i * g.s.0 + ki * g.d.0) as isize - g.p.0 as isize;
                        let iw = (j * g.s.1 + kj * g.d.1) as isize - g.p.1 as isize;
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd {
                            vals.push(x[(plane * h + ih as usize) * wd + iw as usize]);
                        }
                    }
                }
                y.push(if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                });
            }
        }
    }
    y
}

/// The MNIST directory: `$WGRAD_MNIST_DIR`, default `../shared/data/mnist-10k` beside the
/// project. Missing: a failure when `CI=true`, otherwise a loud skip (`None`).
pub fn mnist_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var("WGRAD_MNIST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist-10k")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "MNIST data not found at {} (set WGRAD_MNIST_DIR); CI must run this test",
            dir.display()
        );
    }
    eprintln!(
        "\n*** SKIPPED: MNIST data not found at {} (set WGRAD_MNIST_DIR) ***\n",
        dir.display()
    );
    None
}

/// Fixed-shape inputs `x0, x1, …` of these shapes.
pub fn fixed_inputs(g: &Graph, shapes: &[Vec<usize>]) -> Vec<NodeId> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            g.input_with_shape(&format!("x{i}"), Shape::fixed(s))
                .unwrap()
        })
        .collect()
}

/// Evaluates what `build` makes of fixed inputs with these shapes and data (poisoned
/// context): the values and their shape.
pub fn run(
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
) -> (Vec<f32>, Shape) {
    run_on(&ctx(), shapes, data, build)
}

/// [`run`] on a given context.
pub fn run_on(
    ctx: &Context,
    shapes: &[Vec<usize>],
    data: &[Vec<f32>],
    build: impl Fn(&Graph, &[NodeId]) -> NodeId,
) -> (Vec<f32>, Shape) {
    let g = Graph::new();
    let xs = fixed_inputs(&g, shapes);
    let out = build(&g, &xs);
    let mut ex = Executor::new(ctx, &g).unwrap();
    let feed: Vec<(NodeId, &[f32])> = xs.iter().zip(data).map(|(&x, d)| (x, &d[..])).collect();
    (ex.eval(&[out], &feed).unwrap().remove(0), g.shape(out))
}

/// The named arrays of a fixture's text file (tests/fixtures/onnx): a name, its dims, then its values.
pub fn read_arrays(path: &std::path::Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    lines
        .chunks(2)
        .map(|pair| {
            let mut head = pair[0].split_whitespace();
            let name = head.next().unwrap().to_string();
            let dims = head.map(|d| d.parse().unwrap()).collect();
            let values = pair[1].split_whitespace().map(|v| v.parse().unwrap());
            (name, dims, values.collect())
        })
        .collect()
}
