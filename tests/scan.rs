//! General recurrences (`Graph::recurrence`, a step function scanned over a sequence axis):
//! a two-state cell that no fused kernel computes, against an f64 reference, with its
//! gradients (inputs, weights, a learned and a per-sequence initial state, a per-sequence
//! value the step reads) by finite differences through 21 steps in both directions; two
//! stacked RNNs running in opposite directions as the fused RNN scans; a sequence alone and
//! inside a padded batch; length 1 as one step; the plan's loop; errors.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Executor, Graph, NodeId, Shape};

const F: usize = 3;
const M: usize = 2;
const C: usize = 2;

/// The cell's parameters: W [F, H], U [H, H], Q [C, H], b [H], V [M, H], P [H, M], h0 [H].
const DIMS: [&str; 7] = ["w", "u", "q", "b", "v", "p", "h0"];

fn dims(hn: usize) -> [Vec<usize>; 7] {
    [
        vec![F, hn],
        vec![hn, hn],
        vec![C, hn],
        vec![hn],
        vec![M, hn],
        vec![hn, M],
        vec![hn],
    ]
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `v [n] · a [n, k]`.
fn vecmat(v: &[f64], a: &[f64], k: usize) -> Vec<f64> {
    (0..k)
        .map(|q| (0..v.len()).map(|j| v[j] * a[j * k + q]).sum())
        .collect()
}

/// One step: h' = tanh(x·W + h·U + c·Q + b) ⊙ σ(m·V), m' = m/2 + σ(h'·P).
fn cell(
    p: &[Vec<f64>],
    hn: usize,
    x: &[f64],
    c: &[f64],
    h: &[f64],
    m: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (xw, hu, cq, mv) = (
        vecmat(x, &p[0], hn),
        vecmat(h, &p[1], hn),
        vecmat(c, &p[2], hn),
        vecmat(m, &p[4], hn),
    );
    let h2: Vec<f64> = (0..hn)
        .map(|q| (xw[q] + hu[q] + cq[q] + p[3][q]).tanh() * sigmoid(mv[q]))
        .collect();
    let hp = vecmat(&h2, &p[5], M);
    let m2 = (0..M).map(|j| 0.5 * m[j] + sigmoid(hp[j])).collect();
    (h2, m2)
}

/// Every step's (h, m) of one sequence.
fn reference(
    p: &[Vec<f64>],
    hn: usize,
    xs: &[Vec<f64>],
    c: &[f64],
    m0: &[f64],
    backwards: bool,
) -> Vec<(Vec<f64>, Vec<f64>)> {
    let (mut h, mut m) = (p[6].clone(), m0.to_vec());
    let mut out = vec![(Vec::new(), Vec::new()); xs.len()];
    let order: Vec<usize> = match backwards {
        true => (0..xs.len()).rev().collect(),
        false => (0..xs.len()).collect(),
    };
    for t in order {
        (h, m) = cell(p, hn, &xs[t], c, &h, &m);
        out[t] = (h.clone(), m.clone());
    }
    out
}

/// The cell as graph nodes, for the step function and for one step on its own.
fn cell_nodes(
    g: &Graph,
    ws: &[NodeId],
    x: NodeId,
    c: NodeId,
    h: NodeId,
    m: NodeId,
) -> (NodeId, NodeId) {
    let pre = g.matmul(x, ws[0]).unwrap();
    let pre = g.add(pre, g.matmul(h, ws[1]).unwrap()).unwrap();
    let pre = g.add(pre, g.matmul(c, ws[2]).unwrap()).unwrap();
    let pre = g.add(pre, ws[3]).unwrap();
    let gate = g.sigmoid(g.matmul(m, ws[4]).unwrap()).unwrap();
    let h2 = g.mul(g.tanh(pre).unwrap(), gate).unwrap();
    let m2 = g
        .add(
            g.scale(m, 0.5).unwrap(),
            g.sigmoid(g.matmul(h2, ws[5]).unwrap()).unwrap(),
        )
        .unwrap();
    (h2, m2)
}

/// The recurrence of [`cell_nodes`] over an input sequence, with every parameter, c and m0
/// as inputs.
struct Cell {
    x: NodeId,
    ws: Vec<NodeId>,
    c: NodeId,
    m0: NodeId,
    /// h and m at every step.
    states: Vec<NodeId>,
}

fn cell_graph(g: &Graph, hn: usize, backwards: bool) -> Cell {
    let x = g.input_sequence("x", &[F]).unwrap();
    let ws: Vec<NodeId> = DIMS
        .iter()
        .zip(dims(hn))
        .map(|(n, d)| g.input_with_shape(n, Shape::fixed(&d)).unwrap())
        .collect();
    let c = g.input("c", &[C]).unwrap();
    let m0 = g.input("m0", &[M]).unwrap();
    let states = g
        .recurrence(&[x], &[ws[6], m0], backwards, |g, xs, hs| {
            let (h2, m2) = cell_nodes(g, &ws, xs[0], c, hs[0], hs[1]);
            Ok(vec![h2, m2])
        })
        .unwrap();
    Cell {
        x,
        ws,
        c,
        m0,
        states,
    }
}

struct Run {
    h: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    dx: Vec<Vec<f32>>,
    /// The parameters' gradients, then dc [batch, C] and dm0 [batch, M].
    dp: Vec<Vec<f32>>,
}

/// Per sequence: Σ_t (h_t·r + m_t·s), the states, and the gradients.
#[allow(clippy::too_many_arguments)]
fn run(
    p: &[Vec<f64>],
    hn: usize,
    seqs: &[Vec<f32>],
    steps: usize,
    c: &[f32],
    m0: &[f32],
    r: &[f32],
    backwards: bool,
) -> Run {
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack_to(&refs, F, steps).unwrap();
    let g = Graph::new();
    let Cell {
        x,
        ws,
        c: cin,
        m0: m0in,
        states,
    } = cell_graph(&g, hn, backwards);
    let rin = g.input("r", &[hn + M]).unwrap();
    let both = g.concat(states[0], states[1], -1).unwrap();
    let per_seq = g
        .sequence_reduce_sum(g.mul(both, g.sequence_broadcast(rin).unwrap()).unwrap())
        .unwrap();
    let loss = g.reduce_sum(per_seq, &[]).unwrap();
    let mut wrt = vec![x];
    wrt.extend(&ws);
    wrt.extend([cin, m0in]);
    let grads = g.grad(loss, &wrt).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let data: Vec<Vec<f32>> = p
        .iter()
        .map(|v| v.iter().map(|&a| a as f32).collect())
        .collect();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.extend(ws.iter().zip(&data).map(|(&n, d)| (n, &d[..])));
    feed.extend([(cin, c), (m0in, m0), (rin, r)]);
    let mut outs = vec![states[0], states[1]];
    outs.extend(&grads);
    let got = ex.eval(&outs, &feed).unwrap();
    Run {
        h: batch.unpack(&got[0]).unwrap(),
        m: batch.unpack(&got[1]).unwrap(),
        dx: batch.unpack(&got[2]).unwrap(),
        dp: got[3..].to_vec(),
    }
}

fn params(hn: usize, seed: u64) -> Vec<Vec<f64>> {
    dims(hn)
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let n = d.iter().product();
            to64(&rand_vec(n, seed + k as u64))
                .iter()
                .map(|v| v * 0.7)
                .collect()
        })
        .collect()
}

/// Seeded data for `lengths`: sequences, c [batch, C], m0 [batch, M], r [batch, H + M].
fn data(hn: usize, lengths: &[usize], seed: u64) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let seqs = lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, seed + k as u64))
        .collect();
    let b = lengths.len();
    (
        seqs,
        rand_vec(b * C, seed + 100),
        rand_vec(b * M, seed + 101),
        rand_vec(b * (hn + M), seed + 102),
    )
}

#[test]
fn a_recurrence_matches_the_reference_and_finite_differences() {
    for backwards in [false, true] {
        for hn in [1, 3, 37] {
            let p = params(hn, 10 + hn as u64);
            let lengths = [1usize, 21, 5];
            let (seqs, c, m0, r) = data(hn, &lengths, 20);
            let got = run(&p, hn, &seqs, 21, &c, &m0, &r, backwards);
            let xs: Vec<Vec<Vec<f64>>> = seqs
                .iter()
                .map(|s| s.chunks(F).map(to64).collect())
                .collect();
            let cs: Vec<Vec<f64>> = c.chunks(C).map(to64).collect();
            let m0s: Vec<Vec<f64>> = m0.chunks(M).map(to64).collect();
            for k in 0..3 {
                let want = reference(&p, hn, &xs[k], &cs[k], &m0s[k], backwards);
                let wh: Vec<f64> = want.iter().flat_map(|s| s.0.clone()).collect();
                let wm: Vec<f64> = want.iter().flat_map(|s| s.1.clone()).collect();
                let what = format!("H {hn} backwards {backwards} sequence {k}");
                assert_close(&format!("{what}: h"), &got.h[k], &wh, 1e-4);
                assert_close(&format!("{what}: m"), &got.m[k], &wm, 1e-4);
            }
            if hn == 37 {
                continue;
            }
            let rs: Vec<f64> = to64(&r);
            let loss = |p: &[Vec<f64>], xs: &[Vec<Vec<f64>>], cs: &[Vec<f64>], m0s: &[Vec<f64>]| {
                (0..xs.len())
                    .map(|k| {
                        reference(p, hn, &xs[k], &cs[k], &m0s[k], backwards)
                            .iter()
                            .map(|(h, m)| {
                                let hm: Vec<f64> = h.iter().chain(m).copied().collect();
                                (0..hn + M)
                                    .map(|j| hm[j] * rs[k * (hn + M) + j])
                                    .sum::<f64>()
                            })
                            .sum::<f64>()
                    })
                    .sum::<f64>()
            };
            let fd = |f: &dyn Fn(f64) -> f64| (f(1e-5) - f(-1e-5)) / 2e-5;
            for k in 0..3 {
                let mut want = Vec::new();
                for t in 0..xs[k].len() {
                    for j in 0..F {
                        want.push(fd(&|d| {
                            let mut q = xs.clone();
                            q[k][t][j] += d;
                            loss(&p, &q, &cs, &m0s)
                        }));
                    }
                }
                let what = format!("H {hn} backwards {backwards}: d/dx {k}");
                assert_close(&what, &got.dx[k], &want, 2e-3);
            }
            for (which, name) in DIMS.iter().enumerate() {
                let want: Vec<f64> = (0..p[which].len())
                    .map(|i| {
                        fd(&|d| {
                            let mut q = p.clone();
                            q[which][i] += d;
                            loss(&q, &xs, &cs, &m0s)
                        })
                    })
                    .collect();
                let what = format!("H {hn} backwards {backwards}: d/d{name}");
                assert_close(&what, &got.dp[which], &want, 2e-3);
            }
            for (which, (name, vals, width)) in
                [("c", &cs, C), ("m0", &m0s, M)].into_iter().enumerate()
            {
                let mut want = Vec::new();
                for k in 0..3 {
                    for j in 0..width {
                        want.push(fd(&|d| {
                            let mut q = vals.clone();
                            q[k][j] += d;
                            match which {
                                0 => loss(&p, &xs, &q, &m0s),
                                _ => loss(&p, &xs, &cs, &q),
                            }
                        }));
                    }
                }
                let what = format!("H {hn} backwards {backwards}: d/d{name}");
                assert_close(&what, &got.dp[7 + which], &want, 2e-3);
            }
        }
    }
}

#[test]
fn a_sequence_gives_the_same_results_alone_and_in_a_padded_batch() {
    let hn = 4;
    let p = params(hn, 40);
    let lengths = [3usize, 1, 6];
    let (seqs, c, m0, r) = data(hn, &lengths, 50);
    for backwards in [false, true] {
        let all = run(&p, hn, &seqs, 9, &c, &m0, &r, backwards);
        for k in 0..3 {
            let one = |v: &[f32], w: usize| v[k * w..(k + 1) * w].to_vec();
            let alone = run(
                &p,
                hn,
                &seqs[k..k + 1],
                lengths[k],
                &one(&c, C),
                &one(&m0, M),
                &one(&r, hn + M),
                backwards,
            );
            let what = format!("backwards {backwards} sequence {k} alone");
            assert_close(&format!("{what}: h"), &alone.h[0], &to64(&all.h[k]), 1e-6);
            assert_close(&format!("{what}: m"), &alone.m[0], &to64(&all.m[k]), 1e-6);
            assert_close(
                &format!("{what}: dx"),
                &alone.dx[0],
                &to64(&all.dx[k]),
                1e-6,
            );
            assert_close(
                &format!("{what}: dc"),
                &alone.dp[7],
                &to64(&one(&all.dp[7], C)),
                1e-6,
            );
            assert_close(
                &format!("{what}: dm0"),
                &alone.dp[8],
                &to64(&one(&all.dp[8], M)),
                1e-6,
            );
        }
    }
}

/// Two stacked plain RNNs written as step functions, the second running the other way over
/// the first's states and both read by the loss, give the fused RNN scans' states and
/// gradients.
#[test]
fn stacked_step_function_rnns_equal_the_fused_rnn_scans() {
    let hn = 5;
    let lengths = [2usize, 7, 4];
    let seqs: Vec<Vec<f32>> = lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, 70 + k as u64))
        .collect();
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, F).unwrap();
    let names = ["w1", "u1", "b1", "h01", "w2", "u2", "b2", "h02"];
    for backwards in [false, true] {
        let mut results = Vec::new();
        for fused in [true, false] {
            let g = Graph::new();
            let x = g.input_sequence("x", &[F]).unwrap();
            let init = wgrad::Init::Uniform {
                low: -0.6,
                high: 0.6,
            };
            let ps: Vec<NodeId> = names
                .iter()
                .map(|n| {
                    let d = match &n[..1] {
                        "w" if n.ends_with('1') => vec![F, hn],
                        "u" | "w" => vec![hn, hn],
                        _ => vec![hn],
                    };
                    g.parameter(n, &d, init).unwrap()
                })
                .collect();
            let layer = |x: NodeId, p: &[NodeId], back: bool| match fused {
                true => g.rnn(x, p[0], p[1], p[2], p[3], back).unwrap(),
                false => g
                    .recurrence(&[x], &[p[3]], back, |g, xs, hs| {
                        let pre = g.add(g.matmul(xs[0], p[0])?, g.matmul(hs[0], p[1])?)?;
                        Ok(vec![g.tanh(g.add(pre, p[2])?)?])
                    })
                    .unwrap()[0],
            };
            let h1 = layer(x, &ps[..4], backwards);
            let h2 = layer(h1, &ps[4..], !backwards);
            let h = g.concat(h1, h2, -1).unwrap();
            let loss = g
                .reduce_sum(g.sequence_reduce_sum(g.mul(h, h).unwrap()).unwrap(), &[])
                .unwrap();
            let mut wrt = vec![x];
            wrt.extend(&ps);
            let grads = g.grad(loss, &wrt).unwrap();
            let mut ex = Executor::new(&ctx(), &g).unwrap();
            let feed = batch.feed(x, g.sequence_lengths()).to_vec();
            let mut outs = vec![h];
            outs.extend(grads);
            results.push(ex.eval(&outs, &feed).unwrap());
        }
        let what = ["h", "dx"].iter().chain(&names);
        for (k, name) in what.enumerate() {
            let what = format!("backwards {backwards}: {name}");
            let (fused, stepped) = (&results[0][k], &results[1][k]);
            let (fused, stepped) = match k {
                0 | 1 => (
                    batch.unpack(fused).unwrap().concat(),
                    batch.unpack(stepped).unwrap().concat(),
                ),
                _ => (fused.clone(), stepped.clone()),
            };
            assert_close(&what, &stepped, &to64(&fused), 1e-5);
        }
    }
}

#[test]
fn a_recurrence_over_one_step_is_one_step_of_the_cell() {
    let hn = 3;
    let p = params(hn, 80);
    let data: Vec<Vec<f32>> = p
        .iter()
        .map(|v| v.iter().map(|&a| a as f32).collect())
        .collect();
    let (seqs, c, m0, _) = data_for_one(hn);
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, F).unwrap();
    let g = Graph::new();
    let Cell {
        x,
        ws,
        c: cin,
        m0: m0in,
        states,
    } = cell_graph(&g, hn, false);
    let xstep = g.input("x step", &[F]).unwrap();
    let h0 = g.expand(ws[6], Shape::batched(&[hn])).unwrap();
    let (h1, m1) = cell_nodes(&g, &ws, xstep, cin, h0, m0in);
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    let flat: Vec<f32> = seqs.concat();
    feed.push((xstep, &flat));
    feed.extend(ws.iter().zip(&data).map(|(&n, d)| (n, &d[..])));
    feed.extend([(cin, &c[..]), (m0in, &m0[..])]);
    let got = ex.eval(&[states[0], states[1], h1, m1], &feed).unwrap();
    assert_close("h after one step", &got[0], &to64(&got[2]), 1e-6);
    assert_close("m after one step", &got[1], &to64(&got[3]), 1e-6);
}

fn data_for_one(hn: usize) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>) {
    data(hn, &[1, 1, 1, 1], 90)
}

/// The plan holds one loop per scan whatever the length: forwards the pick, the body and
/// the commits; backwards the same with the recomputed body and its gradient.
#[test]
fn the_plan_does_not_grow_with_the_length() {
    let hn = 3;
    let mut sizes = Vec::new();
    for len in [5usize, 50] {
        let g = Graph::new();
        let x = g.input_sequence("x", &[F]).unwrap();
        let w = g
            .parameter("w", &[F, hn], wgrad::Init::GlorotUniform)
            .unwrap();
        let u = g
            .parameter("u", &[hn, hn], wgrad::Init::GlorotUniform)
            .unwrap();
        let h0 = g.constant(0.0, &[hn]);
        let h = g
            .recurrence(&[x], &[h0], false, |g, xs, hs| {
                Ok(vec![
                    g.tanh(g.add(g.matmul(xs[0], w)?, g.matmul(hs[0], u)?)?)?
                ])
            })
            .unwrap()[0];
        let loss = g.reduce_sum(g.sequence_last(h).unwrap(), &[]).unwrap();
        let grads = g.grad(loss, &[w, u]).unwrap();
        let mut ex = Executor::new(&ctx(), &g).unwrap();
        let xs = rand_vec(2 * len * F, 3);
        let refs: Vec<&[f32]> = xs.chunks(len * F).collect();
        let batch = SequenceBatch::pack(&refs, F).unwrap();
        let feed = batch.feed(x, g.sequence_lengths()).to_vec();
        let plan = ex.plan_summary(&grads, &feed, false).unwrap();
        let loops: Vec<usize> = plan.loops.iter().map(|l| l.times).collect();
        assert_eq!(loops, [len, len], "{plan}");
        sizes.push((
            plan.len(),
            plan.loops.iter().map(|l| l.len).collect::<Vec<_>>(),
        ));
        let got = ex.eval(&grads, &feed).unwrap();
        assert!(got.iter().flatten().all(|v| v.is_finite()));
    }
    assert_eq!(sizes[0], sizes[1]);
}

#[test]
fn recurrences_reject_what_they_cannot_run() {
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let h0 = g.constant(0.0, &[2]);
    let err = |r: wgrad::Result<Vec<NodeId>>| r.unwrap_err().to_string();
    // A state of another shape.
    let e = err(g.recurrence(&[x], &[h0], false, |_, xs, _| Ok(vec![xs[0]])));
    assert!(
        e.contains("state 0") && e.contains("[batch, 3]") && e.contains("[batch, 2]"),
        "{e}"
    );
    // A sequence made inside the step.
    let e = err(g.recurrence(&[x], &[h0], false, |g, _, hs| {
        let s = g.sequence_broadcast(hs[0])?;
        Ok(vec![g.sequence_last(s)?])
    }));
    assert!(e.contains("over a sequence axis"), "{e}");
    // No inputs; a count of states that does not match.
    assert!(
        err(g.recurrence(&[], &[h0], false, |_, _, hs| Ok(hs.to_vec()))).contains("at least one")
    );
    let e = err(g.recurrence(&[x], &[h0], false, |_, _, hs| Ok(vec![hs[0], hs[0]])));
    assert!(e.contains("2 states for 1"), "{e}");
    // A node made in the step and read after the recurrence.
    let mut inner = None;
    let hs = g
        .recurrence(&[x], &[h0], false, |g, xs, hs| {
            let v = g.add(hs[0], g.slice(xs[0], -1, 0, 2)?)?;
            inner = Some(v);
            Ok(vec![v])
        })
        .unwrap();
    let outside = g.scale(inner.unwrap(), 2.0).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let xs = rand_vec(2 * F, 4);
    let batch = SequenceBatch::pack(&[&xs[..]], F).unwrap();
    let feed = batch.feed(x, g.sequence_lengths()).to_vec();
    assert!(ex.eval(&[hs[0]], &feed).is_ok());
    let e = ex.eval(&[outside], &feed).unwrap_err().to_string();
    assert!(e.contains("only inside a recurrence"), "{e}");
    // ONNX export names what it cannot write.
    let e = wgrad::onnx::export(&g, &ex, &[("h", hs[0])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("general recurrence"), "{e}");
}

/// A step function built from layers (their parameters made inside it) trains with a
/// trainer: the learner updates every parameter it reads, and the loss falls.
#[test]
fn a_recurrence_built_from_layers_trains() {
    use wgrad::nn::{Dense, Layer};
    let ctx = ctx();
    let g = Graph::with_seed(3);
    let x = g.input_sequence("x", &[2]).unwrap();
    let hn = 6;
    let h0 = g.parameter("h0", &[hn], wgrad::Init::Zeros).unwrap();
    let hs = g
        .recurrence(&[x], &[h0], false, |g, xs, hs| {
            let both = g.concat(xs[0], hs[0], -1)?;
            Ok(vec![Dense::new(hn)
                .activation(wgrad::nn::Activation::Tanh)
                .build(g, "cell", both)?])
        })
        .unwrap();
    let y = Dense::new(1)
        .build(&g, "out", g.sequence_last(hs[0]).unwrap())
        .unwrap();
    let t = g.input("t", &[1]).unwrap();
    let loss = g.squared_error(y, t).unwrap();
    let mut tr = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::adam(0.02)).unwrap();
    // The target: Σ_t (x0 - x1) / 4 over each sequence.
    let lengths = [1usize, 3, 8, 5, 2, 7, 4, 6];
    let seqs: Vec<Vec<f32>> = lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(2 * l, 200 + k as u64))
        .collect();
    let targets: Vec<f32> = seqs
        .iter()
        .map(|s| s.chunks(2).map(|p| p[0] - p[1]).sum::<f32>() / 4.0)
        .collect();
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, 2).unwrap();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.push((t, &targets));
    let mut losses = Vec::new();
    for _ in 0..150 {
        losses.push(tr.train_minibatch(&feed, true).unwrap().unwrap().loss);
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.1 * first, "loss {first} → {last}");
}
