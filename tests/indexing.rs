//! Ops that pick or order elements: min, argmax and hardmax, stack, and the embedding lookup
//! with its scatter-add gradient. Forward against f64 references on odd shapes (poisoned
//! outputs), gradients against finite differences.

#![allow(clippy::needless_range_loop)]

mod common;
use common::*;

const TOL: f64 = 1e-5;
const GTOL: f64 = 2e-3;

/// `x` viewed as [outer, len, inner] around `axis`.
fn around(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// f64 reference: the first index of the maximum along `axis` (axis removed).
fn argmax_ref(x: &[f64], dims: &[usize], axis: usize) -> Vec<f64> {
    let (outer, len, inner) = around(dims, axis);
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x[o * len * inner + j * inner + i];
            let best = (1..len).fold(0, |b, j| if at(j) > at(b) { j } else { b });
            out.push(best as f64);
        }
    }
    out
}

#[test]
fn reduce_min_matches_the_reference_on_both_kernels() {
    // [3, 7, 5] along each axis, and a long axis that runs one workgroup per output.
    for (dims, axis) in [
        (vec![3, 7, 5], 0),
        (vec![3, 7, 5], 1),
        (vec![3, 7, 5], 2),
        (vec![3, 300], 1),
    ] {
        let d = vec![rand_vec(dims.iter().product(), 3)];
        let build =
            |g: &wgrad::Graph, v: &[wgrad::NodeId]| g.reduce_min(v[0], &[axis as isize]).unwrap();
        let reference = |v: &[Vec<f64>]| {
            let neg: Vec<f64> = v[0].iter().map(|a| -a).collect();
            reduce_ref(&neg, &dims, axis, "max")
                .iter()
                .map(|a| -a)
                .collect::<Vec<f64>>()
        };
        let (got, _) = run(std::slice::from_ref(&dims), &d, build);
        assert_close(
            &format!("min {dims:?} axis {axis}"),
            &got,
            &reference(&[to64(&d[0])]),
            TOL,
        );
        check_grad(
            &format!("min {dims:?} axis {axis}"),
            std::slice::from_ref(&dims),
            &d,
            build,
            reference,
            GTOL,
        );
    }
}

#[test]
fn argmax_takes_the_first_maximum() {
    for (dims, axis) in [(vec![4, 9], 1), (vec![5, 3, 2], 0), (vec![2, 3, 7], 1)] {
        let n: usize = dims.iter().product();
        // Coarse values, so that ties occur: the first one must win.
        let d: Vec<f32> = rand_vec(n, 5).iter().map(|v| (v * 3.0).round()).collect();
        let (got, shape) = run(
            std::slice::from_ref(&dims),
            std::slice::from_ref(&d),
            |g, v| g.argmax(v[0], axis as isize).unwrap(),
        );
        let mut kept = dims.clone();
        kept.remove(axis);
        assert_eq!(shape, wgrad::Shape::fixed(&kept));
        assert_close(
            &format!("argmax {dims:?}"),
            &got,
            &argmax_ref(&to64(&d), &dims, axis),
            0.0,
        );
    }
}

#[test]
fn hardmax_marks_the_first_maximum_along_any_axis() {
    for (dims, axis) in [(vec![3, 6], 1), (vec![4, 3, 5], 1), (vec![4, 3, 5], 0)] {
        let n: usize = dims.iter().product();
        let d: Vec<f32> = rand_vec(n, 8).iter().map(|v| (v * 2.0).round()).collect();
        let (got, shape) = run(
            std::slice::from_ref(&dims),
            std::slice::from_ref(&d),
            |g, v| g.hardmax(v[0], axis as isize).unwrap(),
        );
        assert_eq!(shape, wgrad::Shape::fixed(&dims));
        let best = argmax_ref(&to64(&d), &dims, axis);
        let (outer, len, inner) = around(&dims, axis);
        let mut want = vec![0.0; n];
        for o in 0..outer {
            for i in 0..inner {
                let j = best[o * inner + i] as usize;
                want[o * len * inner + j * inner + i] = 1.0;
            }
        }
        assert_close(&format!("hardmax {dims:?} axis {axis}"), &got, &want, 0.0);
    }
}

#[test]
fn stack_inserts_a_new_axis_and_splits_the_gradient() {
    let dims = vec![3, 5];
    for axis in [0isize, 1, 2, -1] {
        let shapes = vec![dims.clone(); 3];
        let d: Vec<Vec<f32>> = (0..3).map(|k| rand_vec(15, 20 + k)).collect();
        let build = |g: &wgrad::Graph, v: &[wgrad::NodeId]| g.stack(v, axis).unwrap();
        let at = if axis < 0 { 2 } else { axis as usize };
        let reference = |v: &[Vec<f64>]| {
            // out[i0, i1, i2] with the stacked index at position `at`.
            let mut out = Vec::new();
            let idx = |k: usize, r: usize, c: usize| v[k][r * 5 + c];
            match at {
                0 => (0..3)
                    .for_each(|k| (0..3).for_each(|r| (0..5).for_each(|c| out.push(idx(k, r, c))))),
                1 => (0..3)
                    .for_each(|r| (0..3).for_each(|k| (0..5).for_each(|c| out.push(idx(k, r, c))))),
                _ => (0..3)
                    .for_each(|r| (0..5).for_each(|c| (0..3).for_each(|k| out.push(idx(k, r, c))))),
            }
            out
        };
        let (got, shape) = run(&shapes, &d, build);
        let mut want_shape = dims.clone();
        want_shape.insert(at, 3);
        assert_eq!(shape, wgrad::Shape::fixed(&want_shape));
        let v64: Vec<Vec<f64>> = d.iter().map(|x| to64(x)).collect();
        assert_close(&format!("stack axis {axis}"), &got, &reference(&v64), TOL);
        check_grad(
            &format!("stack axis {axis}"),
            &shapes,
            &d,
            build,
            reference,
            GTOL,
        );
    }
    let g = wgrad::Graph::new();
    let a = g.input("a", &[3]).unwrap();
    let b = g.input("b", &[4]).unwrap();
    let e = g.stack(&[a, b], 0).unwrap_err().to_string();
    assert!(
        e.contains("stack") && e.contains("[batch, 3]") && e.contains("[batch, 4]"),
        "{e}"
    );
    assert!(g
        .stack(&[], 0)
        .unwrap_err()
        .to_string()
        .contains("at least one"));
}

/// f64 reference of an embedding lookup: a zero row for an index outside the table. (Its
/// test data are whole numbers; the rounding keeps finite differences of 0 from leaving the
/// table.)
fn embedding_ref(table: &[f64], rows: usize, dim: usize, idx: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    for &i in idx {
        let r = i.round();
        for d in 0..dim {
            out.push(if r >= 0.0 && (r as usize) < rows {
                table[r as usize * dim + d]
            } else {
                0.0
            });
        }
    }
    out
}

#[test]
fn embedding_gathers_rows_and_sums_their_gradients() {
    let (rows, dim) = (7, 5);
    // [3, 4] indices: repeats (row 2 three times), the last row, rows never picked (5). Fed
    // indices outside the table are an error (tests/bad_data.rs).
    let idx: Vec<f32> = vec![2.0, 0.0, 6.0, 2.0, 1.0, 0.0, 3.0, 2.0, 1.0, 6.0, 4.0, 0.0];
    let table = rand_vec(rows * dim, 31);
    let shapes = vec![vec![3, 4], vec![rows, dim]];
    let data = vec![idx.clone(), table.clone()];
    let build = |g: &wgrad::Graph, v: &[wgrad::NodeId]| g.embedding(v[0], v[1]).unwrap();
    let reference = |v: &[Vec<f64>]| embedding_ref(&v[1], rows, dim, &v[0]);
    let (got, shape) = run(&shapes, &data, build);
    assert_eq!(shape, wgrad::Shape::fixed(&[3, 4, dim]));
    assert_close(
        "embedding",
        &got,
        &reference(&[to64(&idx), to64(&table)]),
        0.0,
    );
    // The indices get a zero gradient; the table's is a sum per row (rows never picked: 0).
    check_grad("embedding", &shapes, &data, build, reference, GTOL);
    // Through a second derivative-free chain: embedding → tanh → embedding table reuse.
    let build2 = |g: &wgrad::Graph, v: &[wgrad::NodeId]| {
        let e = g.embedding(v[0], v[1]).unwrap();
        g.mul(g.tanh(e).unwrap(), e).unwrap()
    };
    let reference2 = |v: &[Vec<f64>]| {
        embedding_ref(&v[1], rows, dim, &v[0])
            .iter()
            .map(|e| e.tanh() * e)
            .collect()
    };
    check_grad("embedding tanh", &shapes, &data, build2, reference2, GTOL);
}

/// The table gradient of many indices: runs of indices summed into copies of the table (the
/// last run shorter), and tables too large for copies (one run, of 700 and of 70,000
/// indices), against exact f64 sums. Run twice, so that sums left from the first run would
/// show.
#[test]
fn embedding_gradient_sums_many_indices_exactly() {
    for (rows, dim, n) in [
        (7, 5, 1000),
        (3, 1, 131),
        (70_001, 61, 700),
        (66_001, 2, 70_000),
    ] {
        let idx: Vec<f32> = (0..n).map(|k| ((k * 7 + k / 3) % rows) as f32).collect();
        let r = rand_vec(n * dim, 5);
        let table = rand_vec(rows * dim, 6);
        let g = wgrad::Graph::new();
        let i = g.input_with_shape("i", wgrad::Shape::fixed(&[n])).unwrap();
        let t = g
            .input_with_shape("t", wgrad::Shape::fixed(&[rows, dim]))
            .unwrap();
        let w = g
            .input_with_shape("r", wgrad::Shape::fixed(&[n, dim]))
            .unwrap();
        let e = g.embedding(i, t).unwrap();
        let loss = g.reduce_sum(g.mul(e, w).unwrap(), &[]).unwrap();
        let dt = g.grad(loss, &[t]).unwrap();
        let mut ex = wgrad::Executor::new(&ctx(), &g).unwrap();
        let feed = [(i, &idx[..]), (t, &table[..]), (w, &r[..])];
        let mut want = vec![0.0f64; rows * dim];
        for (k, &row) in idx.iter().enumerate() {
            for d in 0..dim {
                want[row as usize * dim + d] += r[k * dim + d] as f64;
            }
        }
        for _ in 0..2 {
            let got = ex.eval_training(&dt, &feed).unwrap().remove(0);
            assert_close(
                &format!("table gradient [{rows}, {dim}] of {n} indices"),
                &got,
                &want,
                1e-5,
            );
        }
    }
}

#[test]
fn embedding_rejects_a_table_that_is_not_a_matrix() {
    let g = wgrad::Graph::new();
    let i = g.input("i", &[3]).unwrap();
    let t = g.input("t", &[4]).unwrap();
    let e = g.embedding(i, t).unwrap_err().to_string();
    assert!(e.contains("embedding") && e.contains("[batch, 4]"), "{e}");
}

/// An Embedding layer names its table, and a few SGD steps move only the rows it reads: a
/// row no index names keeps its initial values.
#[test]
fn embedding_layer_trains_only_the_rows_it_reads() {
    use wgrad::nn::{Dense, Embedding, Sequential};
    let ctx = ctx();
    let g = wgrad::Graph::with_seed(4);
    let i = g.input("i", &[3]).unwrap();
    let t = g.input("t", &[2]).unwrap();
    let h = Sequential::new()
        .add(Embedding::new(6, 4))
        .add(Dense::new(2))
        .build(&g, i)
        .unwrap();
    assert_eq!(g.shape(h), wgrad::Shape::batched(&[2]));
    let table = g
        .find("embed1.weight")
        .expect("the table is named embed1.weight");
    let d = g.sub(h, t).unwrap();
    let loss = g.reduce_sum(g.mul(d, d).unwrap(), &[-1]).unwrap();
    let mut tr = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::sgd(0.1)).unwrap();
    let before = tr.executor().parameter(table).unwrap();
    // Rows 0, 2, 3 and 5 are read; rows 1 and 4 never are.
    let idx = [0.0, 2.0, 3.0, 5.0, 2.0, 0.0];
    let tgt = rand_vec(4, 9);
    for _ in 0..3 {
        tr.train_minibatch(&[(i, &idx[..]), (t, &tgt[..])], false)
            .unwrap();
    }
    let after = tr.executor().parameter(table).unwrap();
    for r in 0..6 {
        let moved = (0..4).any(|c| after[r * 4 + c] != before[r * 4 + c]);
        assert_eq!(
            moved,
            ![1, 4].contains(&r),
            "row {r}: {before:?} → {after:?}"
        );
    }
}

/// `Init::Orthogonal` gives orthonormal rows (or columns, when fewer) times the gain, seeded
/// per parameter; `parameter_from` and `Embedding::from_matrix` start from the given values
/// and refuse wrong lengths and non-finite values, naming the parameter.
#[test]
fn orthogonal_and_given_initial_values() {
    let ctx = ctx();
    let g = wgrad::Graph::with_seed(3);
    let gain = 1.5;
    let wide = g
        .parameter("wide", &[5, 12], wgrad::Init::Orthogonal { gain })
        .unwrap();
    let tall = g
        .parameter("tall", &[12, 5], wgrad::Init::Orthogonal { gain })
        .unwrap();
    let given: Vec<f32> = (0..21).map(|i| i as f32 * 0.25 - 2.0).collect();
    let from = g.parameter_from("from", &[7, 3], &given).unwrap();
    let idx = g.input("idx", &[4]).unwrap();
    let e = wgrad::nn::Embedding::from_matrix(7, 3, &given);
    let looked = wgrad::nn::Layer::build(&e, &g, "emb", idx).unwrap();
    let mut ex = wgrad::Executor::new(&ctx, &g).unwrap();
    // Gram matrices along the shorter side: gain² on the diagonal, 0 off it.
    let gram = |m: &[f32], k: usize, n: usize, rows: bool| -> Vec<f64> {
        let at = |i: usize, j: usize| if rows { m[i * n + j] } else { m[j * k + i] } as f64;
        let mut out = Vec::new();
        for a in 0..k {
            for b in 0..k {
                out.push((0..n).map(|j| at(a, j) * at(b, j)).sum());
            }
        }
        out
    };
    let eye: Vec<f64> = (0..25)
        .map(|i| {
            if i % 6 == 0 {
                (gain * gain) as f64
            } else {
                0.0
            }
        })
        .collect();
    let (w, t) = (ex.parameter(wide).unwrap(), ex.parameter(tall).unwrap());
    let as32 = |v: Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    assert_close("rows of wide", &as32(gram(&w, 5, 12, true)), &eye, 1e-5);
    assert_close("columns of tall", &as32(gram(&t, 5, 12, false)), &eye, 1e-5);
    assert_ne!(w[..5], t[..5], "each parameter draws its own matrix");
    assert_eq!(ex.parameter(from).unwrap(), given);
    let rows = [6.0, 0.0, 2.0, 6.0];
    let got = ex.eval(&[looked], &[(idx, &rows[..])]).unwrap();
    let want: Vec<f64> = rows
        .iter()
        .flat_map(|&r| to64(&given[r as usize * 3..r as usize * 3 + 3]))
        .collect();
    assert_close("embedding from a matrix", &got[0], &want, 0.0);
    // Wrong lengths and non-finite values.
    let e = g.parameter_from("short", &[2, 3], &[1.0; 5]).unwrap_err();
    assert!(
        e.to_string().contains("short") && e.to_string().contains("[2, 3]"),
        "{e}"
    );
    let e = g.parameter_from("nan", &[2], &[1.0, f32::NAN]).unwrap_err();
    assert!(
        e.to_string().contains("nan") && e.to_string().contains("finite"),
        "{e}"
    );
    let bad = wgrad::nn::Embedding::from_matrix(7, 4, &given);
    let e = wgrad::nn::Layer::build(&bad, &g, "bad", idx).unwrap_err();
    assert!(e.to_string().contains("bad.weight"), "{e}");
    // Init::Given without values is an error at executor creation, not a panic.
    let g2 = wgrad::Graph::new();
    g2.parameter("novalues", &[2], wgrad::Init::Given).unwrap();
    let e = wgrad::Executor::new(&ctx, &g2).err().expect("an error");
    assert!(e.to_string().contains("novalues"), "{e}");
}
