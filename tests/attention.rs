//! Additive attention of queries on one sequence axis over keys on another: weights and
//! context against an f64 reference (lengths like [1, 4, 2] over [3, 1, 5], odd widths,
//! poisoned outputs, exact zeros at padding), gradients of q, k, v and the values by finite
//! differences, padding and batch invariance, and shape errors.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Executor, Graph, NodeId};

const A: usize = 3;
const E: usize = 5;
const QF: usize = A;
const KF: usize = A + E;

/// One sequence's inputs: queries [lq, A], keys [lk, A], values [lk, E].
#[derive(Clone)]
struct Case {
    q: Vec<f64>,
    k: Vec<f64>,
    values: Vec<f64>,
}

fn cases(lq: &[usize], lk: &[usize], seed: u64) -> Vec<Case> {
    lq.iter()
        .zip(lk)
        .enumerate()
        .map(|(n, (&a, &b))| Case {
            q: to64(&rand_vec(a * A, seed + 3 * n as u64)),
            k: to64(&rand_vec(b * A, seed + 3 * n as u64 + 1)),
            values: to64(&rand_vec(b * E, seed + 3 * n as u64 + 2)),
        })
        .collect()
}

/// f64 weights [lq, lk] and context [lq, E] of one sequence.
fn reference(c: &Case, v: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let (lq, lk) = (c.q.len() / A, c.k.len() / A);
    let mut alpha = Vec::new();
    let mut ctx = Vec::new();
    for t in 0..lq {
        let scores: Vec<f64> = (0..lk)
            .map(|j| {
                (0..A)
                    .map(|a| v[a] * (c.q[t * A + a] + c.k[j * A + a]).tanh())
                    .sum()
            })
            .collect();
        let top = scores.iter().cloned().fold(f64::MIN, f64::max);
        let w: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
        let total: f64 = w.iter().sum();
        let w: Vec<f64> = w.iter().map(|x| x / total).collect();
        ctx.push(
            (0..E)
                .map(|e| (0..lk).map(|j| w[j] * c.values[j * E + e]).sum())
                .collect(),
        );
        alpha.push(w);
    }
    (alpha, ctx)
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The graph: queries on the first axis, keys and values (one input [.., A + E]) on a
/// second; outputs α, the context, and the gradients of Σ r·context wrt q, the keys'
/// input and v.
struct Run {
    alpha: Vec<f32>,
    context: Vec<f32>,
    dq: Vec<Vec<f32>>,
    dkv: Vec<Vec<f32>>,
    dv: Vec<f32>,
}

fn run(cs: &[Case], v: &[f64], pad: usize, r: &[f32]) -> Run {
    let lq_max = cs.iter().map(|c| c.q.len() / A).max().unwrap() + pad;
    let lk_max = cs.iter().map(|c| c.k.len() / A).max().unwrap() + pad;
    let qs: Vec<Vec<f32>> = cs.iter().map(|c| f32s(&c.q)).collect();
    let kvs: Vec<Vec<f32>> = cs
        .iter()
        .map(|c| {
            let lk = c.k.len() / A;
            (0..lk)
                .flat_map(|j| {
                    let mut row = f32s(&c.k[j * A..(j + 1) * A]);
                    row.extend(f32s(&c.values[j * E..(j + 1) * E]));
                    row
                })
                .collect()
        })
        .collect();
    let qr: Vec<&[f32]> = qs.iter().map(|s| &s[..]).collect();
    let kr: Vec<&[f32]> = kvs.iter().map(|s| &s[..]).collect();
    let bq = SequenceBatch::pack_to(&qr, QF, lq_max).unwrap();
    let bk = SequenceBatch::pack_to(&kr, KF, lk_max).unwrap();

    let g = Graph::new();
    let q = g.input_sequence("q", &[QF]).unwrap();
    let keys = g.sequence_axis("key lengths").unwrap();
    let kv = g.input_sequence_on(keys, "kv", &[KF]).unwrap();
    let k = g.slice(kv, -1, 0, A).unwrap();
    let values = g.slice(kv, -1, A, KF).unwrap();
    let vin = g.input_with_shape("v", wgrad::Shape::fixed(&[A])).unwrap();
    let alpha = g.attention_weights(q, k, vin).unwrap();
    let context = g.attention_apply(alpha, values).unwrap();
    let rin = g.input_sequence("r", &[E]).unwrap();
    let per_seq = g.sequence_reduce_sum(g.mul(context, rin).unwrap()).unwrap();
    let loss = g.reduce_sum(per_seq, &[]).unwrap();
    let grads = g.grad(loss, &[q, kv, vin]).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let rs: Vec<&[f32]> = r.chunks(lq_max * E).collect();
    let br = SequenceBatch::pack_to(&rs, E, lq_max).unwrap();
    let v32 = f32s(v);
    let mut feed = bq.feed(q, g.sequence_lengths()).to_vec();
    feed.extend(bk.feed(kv, g.axis_lengths(keys)));
    feed.push((rin, br.values()));
    feed.push((vin, &v32));
    let mut out = ex
        .eval(&[alpha, context, grads[0], grads[1], grads[2]], &feed)
        .unwrap();
    let dv = out.pop().unwrap();
    let dkv = bk.unpack(&out.pop().unwrap()).unwrap();
    let dq = bq.unpack(&out.pop().unwrap()).unwrap();
    let context = out.pop().unwrap();
    Run {
        alpha: out.pop().unwrap(),
        context,
        dq,
        dkv,
        dv,
    }
}

/// r, one [lq_max + pad, E] block per sequence, zero past each length.
fn weights_r(cs: &[Case], steps: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_vec(cs.len() * steps * E, seed);
    for (n, c) in cs.iter().enumerate() {
        for x in &mut r[(n * steps + c.q.len() / A) * E..(n + 1) * steps * E] {
            *x = 0.0;
        }
    }
    r
}

#[test]
fn attention_matches_the_reference_with_exact_padding() {
    let cs = cases(&[1, 4, 2], &[3, 1, 5], 7);
    let v = to64(&rand_vec(A, 70));
    for pad in [0, 2] {
        let (tq, tk) = (4 + pad, 5 + pad);
        let r = weights_r(&cs, tq, 71);
        let got = run(&cs, &v, pad, &r);
        let (mut want_a, mut want_c) = (Vec::new(), Vec::new());
        for c in &cs {
            let (alpha, ctx) = reference(c, &v);
            for t in 0..tq {
                for j in 0..tk {
                    want_a.push(
                        alpha
                            .get(t)
                            .and_then(|row| row.get(j))
                            .copied()
                            .unwrap_or(0.0),
                    );
                }
                want_c.extend(ctx.get(t).cloned().unwrap_or(vec![0.0; E]));
            }
        }
        assert_close(&format!("weights, pad {pad}"), &got.alpha, &want_a, 1e-5);
        assert_close(&format!("context, pad {pad}"), &got.context, &want_c, 1e-5);
    }
}

#[test]
fn attention_gradients_match_finite_differences_and_ignore_the_batch() {
    let cs = cases(&[1, 4, 2], &[3, 1, 5], 9);
    let v = to64(&rand_vec(A, 90));
    let tq = 4;
    let r = weights_r(&cs, tq, 91);
    let got = run(&cs, &v, 0, &r);
    let r64 = to64(&r);
    let loss = |cs: &[Case], v: &[f64]| -> f64 {
        cs.iter()
            .enumerate()
            .map(|(n, c)| {
                let (_, ctx) = reference(c, v);
                ctx.iter()
                    .enumerate()
                    .flat_map(|(t, row)| {
                        let at = (n * tq + t) * E;
                        row.iter()
                            .zip(&r64[at..at + E])
                            .map(|(a, b)| a * b)
                            .collect::<Vec<_>>()
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let h = 1e-5;
    let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let mut want_dv = Vec::new();
    for a in 0..A {
        want_dv.push(fd(&|e| {
            let mut v2 = v.clone();
            v2[a] += e;
            loss(&cs, &v2)
        }));
    }
    assert_close("dv", &got.dv, &want_dv, 1e-4);
    for n in 0..cs.len() {
        let c = &cs[n];
        let shift = |field: usize, i: usize, e: f64| {
            let mut cs2 = cs.clone();
            match field {
                0 => cs2[n].q[i] += e,
                1 => cs2[n].k[i] += e,
                _ => cs2[n].values[i] += e,
            }
            loss(&cs2, &v)
        };
        let want_dq: Vec<f64> = (0..c.q.len()).map(|i| fd(&|e| shift(0, i, e))).collect();
        assert_close(&format!("dq {n}"), &got.dq[n], &want_dq, 1e-4);
        let lk = c.k.len() / A;
        let mut want_dkv = Vec::new();
        for j in 0..lk {
            want_dkv.extend((0..A).map(|a| fd(&|e| shift(1, j * A + a, e))));
            want_dkv.extend((0..E).map(|x| fd(&|e| shift(2, j * E + x, e))));
        }
        assert_close(&format!("dkeys {n}"), &got.dkv[n], &want_dkv, 1e-4);
        // Alone: the same.
        let lq = c.q.len() / A;
        let alone = run(&cs[n..n + 1], &v, 0, &r[n * tq * E..(n * tq + lq) * E]);
        assert_close(
            &format!("alone dq {n}"),
            &alone.dq[0],
            &to64(&got.dq[n]),
            1e-6,
        );
        assert_close(
            &format!("alone dkeys {n}"),
            &alone.dkv[0],
            &to64(&got.dkv[n]),
            1e-6,
        );
    }
    let padded = run(&cs, &v, 2, &{
        let mut r2 = vec![0.0; cs.len() * (tq + 2) * E];
        for n in 0..cs.len() {
            r2[n * (tq + 2) * E..n * (tq + 2) * E + tq * E]
                .copy_from_slice(&r[n * tq * E..(n + 1) * tq * E]);
        }
        r2
    });
    for n in 0..cs.len() {
        assert_close(
            &format!("padded dq {n}"),
            &padded.dq[n],
            &to64(&got.dq[n]),
            1e-6,
        );
        assert_close(
            &format!("padded dkeys {n}"),
            &padded.dkv[n],
            &to64(&got.dkv[n]),
            1e-6,
        );
    }
    assert_close("padded dv", &padded.dv, &to64(&got.dv), 1e-6);
}

#[test]
fn attention_rejects_wrong_shapes() {
    let g = Graph::new();
    let q = g.input_sequence("q", &[3]).unwrap();
    let axis = g.sequence_axis("k lengths").unwrap();
    let k = g.input_sequence_on(axis, "k", &[4]).unwrap();
    let v = g.input_with_shape("v", wgrad::Shape::fixed(&[3])).unwrap();
    let e = g.attention_weights(q, k, v).unwrap_err().to_string();
    assert!(
        e.contains("attention_weights") && e.contains("[batch, seq1, 4]"),
        "{e}"
    );
    let flat = g.input("flat", &[3]).unwrap();
    let e = g.attention_weights(flat, k, v).unwrap_err().to_string();
    assert!(e.contains("sequence"), "{e}");
    let k3 = g.input_sequence_on(axis, "k3", &[3]).unwrap();
    let alpha = g.attention_weights(q, k3, v).unwrap();
    let other = g.input_sequence("other", &[5]).unwrap();
    let e = g.attention_apply(alpha, other).unwrap_err().to_string();
    assert!(e.contains("attention_apply"), "{e}");
    let _: NodeId = alpha;
}

/// The layer: its context equals the ops on its own parameters, and every parameter gets a
/// gradient.
#[test]
fn the_attention_layer_projects_then_attends() {
    use wgrad::nn::AdditiveAttention;
    let (dq, dm) = (4usize, 6usize);
    let qs: Vec<Vec<f32>> = [2usize, 3]
        .iter()
        .enumerate()
        .map(|(n, &l)| rand_vec(l * dq, 50 + n as u64))
        .collect();
    let ms: Vec<Vec<f32>> = [4usize, 1]
        .iter()
        .enumerate()
        .map(|(n, &l)| rand_vec(l * dm, 60 + n as u64))
        .collect();
    let qr: Vec<&[f32]> = qs.iter().map(|s| &s[..]).collect();
    let mr: Vec<&[f32]> = ms.iter().map(|s| &s[..]).collect();
    let (bq, bm) = (
        SequenceBatch::pack(&qr, dq).unwrap(),
        SequenceBatch::pack(&mr, dm).unwrap(),
    );
    let g = Graph::with_seed(3);
    let q = g.input_sequence("q", &[dq]).unwrap();
    let axis = g.sequence_axis("memory lengths").unwrap();
    let m = g.input_sequence_on(axis, "m", &[dm]).unwrap();
    let layer = AdditiveAttention { dim: 5 };
    let c = layer.apply(&g, "att", q, m).unwrap();
    assert_eq!(g.shape(c).to_string(), "[batch, seq, 6]");
    let p = |n: &str| g.find(n).unwrap();
    let (wq, wk, b, v) = (
        p("att.query.weight"),
        p("att.key.weight"),
        p("att.key.bias"),
        p("att.score"),
    );
    let k = g.add(g.matmul(m, wk).unwrap(), b).unwrap();
    let manual = g
        .additive_attention(g.matmul(q, wq).unwrap(), k, v, m)
        .unwrap();
    let total = g
        .reduce_sum(g.sequence_reduce_sum(c).unwrap(), &[])
        .unwrap();
    let grads = g.grad(total, &[wq, wk, b, v]).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut feed = bq.feed(q, g.sequence_lengths()).to_vec();
    feed.extend(bm.feed(m, g.axis_lengths(axis)));
    let mut targets = vec![c, manual];
    targets.extend(&grads);
    let out = ex.eval(&targets, &feed).unwrap();
    assert_close("layer vs ops", &out[0], &to64(&out[1]), 1e-6);
    for (k, gk) in out[2..].iter().enumerate() {
        assert!(
            gk.iter().any(|&x| x != 0.0) && gk.iter().all(|x| x.is_finite()),
            "grad {k}: {gk:?}"
        );
    }
}
