//! The padding other frameworks use: TensorFlow/ONNX `SAME_UPPER` and `SAME_LOWER`, explicit
//! begin/end pads per axis, and average pooling that counts padded cells. Each against an
//! f64 reference (outputs poisoned first) and its gradient by finite differences.

mod common;

use common::*;
use wgrad::{Graph, NodeId, Padding, WindowOpts};

const TOL: f64 = 1e-4;
const GTOL: f64 = 2e-3;

fn data(shapes: &[Vec<usize>], seed: u64) -> Vec<Vec<f32>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand_vec(s.iter().product(), seed + i as u64))
        .collect()
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// (name, padding, lead pads, output size) of a 3x3 window, stride 2, dilation (1, 2), on a
/// 6x8 image. Its effective size is 3x5: SAME_UPPER needs 1 row (last) and 3 columns (1
/// first); SAME_LOWER and CNTK's same put the odd row and column first.
/// A padding case: name, padding, lead pads and output size.
type Case = (&'static str, Padding, (usize, usize), (usize, usize));

fn cases() -> Vec<Case> {
    vec![
        ("same upper", Padding::SameUpper, (0, 1), (3, 4)),
        ("same lower", Padding::SameLower, (1, 2), (3, 4)),
        ("cntk same", Padding::Same, (1, 2), (3, 4)),
        (
            "pads (2, 0) .. (0, 3)",
            Padding::Pads {
                begin: (2, 0),
                end: (0, 3),
            },
            (2, 0),
            (3, 4),
        ),
    ]
}

fn opts(padding: Padding) -> WindowOpts {
    WindowOpts {
        stride: (2, 2),
        padding,
        dilation: (1, 2),
    }
}

#[test]
fn convolution_padding_matches_reference_and_gradients() {
    let xs = [2, 2, 6, 8];
    let shapes = vec![xs.to_vec(), vec![3, 2, 3, 3]];
    for (name, padding, p, o) in cases() {
        let geo = Geo {
            k: (3, 3),
            s: (2, 2),
            p,
            d: (1, 2),
            o,
        };
        let build = |g: &Graph, v: &[NodeId]| g.conv2d(v[0], v[1], None, opts(padding)).unwrap();
        let reference = |v: &[Vec<f64>]| conv_ref(&v[0], xs, &v[1], 3, None, geo);
        let d = data(&shapes, 11);
        let (got, shape) = run(&shapes, &d, build);
        assert_eq!(shape.resolve(1), vec![2, 3, o.0, o.1], "{name}");
        let want = reference(&[to64(&d[0]), to64(&d[1])]);
        assert_close(name, &got, &want, TOL);
        check_grad(name, &shapes, &d, build, reference, GTOL);
    }
}

/// Average pooling of `x` where every window's sum is divided by `k.0 · k.1`.
fn avg_counting_ref(
    x: &[f64],
    xs: [usize; 4],
    k: (usize, usize),
    s: usize,
    p: (usize, usize),
    o: (usize, usize),
) -> Vec<f64> {
    let geo = Geo {
        k,
        s: (s, s),
        p,
        d: (1, 1),
        o,
    };
    // The in-image mean times the in-image count is the window's sum.
    let ones = vec![1.0; x.len()];
    let mean = pool_ref(x, xs, geo, false);
    let count_mean = pool_ref(&ones, xs, geo, false);
    assert!(count_mean.iter().all(|&c| c == 1.0));
    let [_, _, h, w] = xs;
    let mut out = Vec::with_capacity(mean.len());
    for (idx, m) in mean.iter().enumerate() {
        let (i, j) = (idx / o.1 % o.0, idx % o.1);
        let inside = |start: usize, len: usize, lead: usize, kk: usize| {
            (0..kk)
                .filter(|t| {
                    let pos = (start + t) as isize - lead as isize;
                    pos >= 0 && (pos as usize) < len
                })
                .count()
        };
        let n = inside(i * s, h, p.0, k.0) * inside(j * s, w, p.1, k.1);
        out.push(m * n as f64 / (k.0 * k.1) as f64);
    }
    out
}

#[test]
fn average_pooling_counting_pads_matches_reference_and_gradients() {
    let xs = [2, 3, 7, 6];
    let shapes = vec![xs.to_vec()];
    let pooled = [
        ("explicit 1", Padding::Explicit(1, 1), (1, 1), (4, 3)),
        ("same upper", Padding::SameUpper, (1, 0), (4, 3)),
        ("valid", Padding::Valid, (0, 0), (3, 2)),
    ];
    for (name, padding, p, o) in pooled {
        let opts = WindowOpts::default().stride(2).padding(padding);
        let build =
            |g: &Graph, v: &[NodeId]| g.avg_pool2d_counting_pads(v[0], (3, 3), opts).unwrap();
        let reference = |v: &[Vec<f64>]| avg_counting_ref(&v[0], xs, (3, 3), 2, p, o);
        let d = data(&shapes, 21);
        let (got, shape) = run(&shapes, &d, build);
        assert_eq!(shape.resolve(1), vec![2, 3, o.0, o.1], "{name}");
        assert_close(name, &got, &reference(&[to64(&d[0])]), TOL);
        check_grad(name, &shapes, &d, build, reference, GTOL);
    }
    // Dilation is refused, naming the op.
    let g = Graph::new();
    let x = g.input("x", &[1, 5, 5]).unwrap();
    let dilated = WindowOpts::default().dilation(2);
    let e = g
        .avg_pool2d_counting_pads(x, (2, 2), dilated)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("avg_pool2d_counting_pads") && e.contains("dilation"),
        "{e}"
    );
}
