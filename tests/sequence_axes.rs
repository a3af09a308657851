//! Several sequence axes, and the ops that select steps onto a derived axis (`sequence_slice`,
//! `sequence_where`, `sequence_gather`): f64 references on lengths like [1, 7, 3, 4] with
//! empty results, poisoned outputs, gradients by finite differences, padding and batch
//! invariance, and the errors of feeds that miss an axis.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{BinaryOp, Executor, Graph, NodeId};

const F: usize = 5;

fn sequences(lengths: &[usize], features: usize, seed: u64) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * features, seed + k as u64))
        .collect()
}

fn pack(seqs: &[Vec<f32>], features: usize, steps: usize) -> SequenceBatch {
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    SequenceBatch::pack_to(&refs, features, steps).unwrap()
}

/// CNTK's slice bounds for a sequence of `len` steps.
fn slice_range(len: usize, begin: i32, end: i32) -> std::ops::Range<usize> {
    let l = len as i32;
    let b = if begin < 0 {
        (l + begin).max(0)
    } else {
        begin.min(l)
    };
    let e = if end <= 0 {
        (l + end).max(0)
    } else {
        end.min(l)
    };
    b as usize..(e.max(b)) as usize
}

/// The condition the gather tests use: step t is kept when its first feature is above 0.
fn cond_of(g: &Graph, x: NodeId) -> NodeId {
    let first = g.slice(x, -1, 0, 1).unwrap();
    let first = g.reduce_sum(first, &[-1]).unwrap();
    g.binary(BinaryOp::Gt, first, g.scalar(0.0)).unwrap()
}

fn kept_by_cond(s: &[f32]) -> Vec<usize> {
    (0..s.len() / F).filter(|&t| s[t * F] > 0.0).collect()
}

/// Evaluates `select(g, x)` and the lengths of its axis on `seqs` padded to `steps`.
fn select_eval(
    seqs: &[Vec<f32>],
    steps: usize,
    select: &dyn Fn(&Graph, NodeId) -> NodeId,
) -> (Vec<f32>, Vec<f32>) {
    let batch = pack(seqs, F, steps);
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let y = select(&g, x);
    let lengths = g.axis_lengths(g.sequence_axis_of(y).unwrap());
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut out = ex
        .eval(&[y, lengths], &batch.feed(x, g.sequence_lengths()))
        .unwrap();
    let l = out.pop().unwrap();
    (out.pop().unwrap(), l)
}

#[test]
fn slices_and_gathers_match_the_reference_and_zero_the_padding() {
    let lengths = [1, 7, 3, 4];
    let mut seqs = sequences(&lengths, F, 3);
    // The one-step sequence keeps nothing in the gather.
    seqs[0][0] = -0.5;
    let ranges = [
        (0, 0),
        (1, 0),
        (-2, 0),
        (0, -1),
        (2, 5),
        (5, 9),
        (-10, 2),
        (3, 3),
    ];
    for steps in [7, 9] {
        for (begin, end) in ranges {
            let (got, got_len) = select_eval(&seqs, steps, &|g, x| {
                g.sequence_slice(x, begin, end).unwrap()
            });
            let mut want = Vec::new();
            let mut want_len = Vec::new();
            for s in &seqs {
                let r = slice_range(s.len() / F, begin, end);
                want_len.push(r.len() as f64);
                want.extend(to64(&s[r.start * F..r.end * F]));
                want.extend(std::iter::repeat_n(0.0, (steps - r.len()) * F));
            }
            let what = format!("slice {begin}..{end} padded to {steps}");
            assert_close(&what, &got, &want, 0.0);
            assert_close(&format!("{what}: lengths"), &got_len, &want_len, 0.0);
        }
        let (got, got_len) = select_eval(&seqs, steps, &|g, x| {
            g.sequence_gather(x, cond_of(g, x)).unwrap()
        });
        let (idx, idx_len) = select_eval(&seqs, steps, &|g, x| {
            g.sequence_where(cond_of(g, x)).unwrap()
        });
        let (mut want, mut want_idx, mut want_len) = (Vec::new(), Vec::new(), Vec::new());
        for s in &seqs {
            let kept = kept_by_cond(s);
            want_len.push(kept.len() as f64);
            for &t in &kept {
                want.extend(to64(&s[t * F..(t + 1) * F]));
            }
            want.extend(std::iter::repeat_n(0.0, (steps - kept.len()) * F));
            want_idx.extend(kept.iter().map(|&t| t as f64));
            want_idx.extend(std::iter::repeat_n(0.0, steps - kept.len()));
        }
        assert!(
            want_len.contains(&0.0),
            "the data should give an empty gather"
        );
        assert_close("gather", &got, &want, 0.0);
        assert_close("gather: lengths", &got_len, &want_len, 0.0);
        assert_close("where", &idx, &want_idx, 0.0);
        assert_close("where: lengths", &idx_len, &want_len, 0.0);
    }
}

/// A model through the selecting ops and the sequence ops on their derived axes, one output
/// row `[3·F]` per sequence: Σ tanh over slice(1, -1), the last step of the gather (zeros
/// when it is empty), and the max over slice(-3, 0).
fn model(g: &Graph, x: NodeId) -> NodeId {
    let inner = g.sequence_slice(x, 1, -1).unwrap();
    let a = g.sequence_reduce_sum(g.tanh(inner).unwrap()).unwrap();
    let kept = g.sequence_gather(x, cond_of(g, x)).unwrap();
    let sq = g.mul(kept, kept).unwrap();
    let b = g.sequence_last(sq).unwrap();
    let c = g
        .sequence_reduce_max(g.sequence_slice(x, -3, 0).unwrap())
        .unwrap();
    g.stack(&[a, b, c], -1)
        .and_then(|s| g.reshape(s, wgrad::Shape::batched(&[3 * F])))
        .unwrap()
}

fn model_ref(s: &[Vec<f64>]) -> Vec<f64> {
    let n = s.len();
    let inner = slice_range(n, 1, -1);
    let a: Vec<f64> = (0..F)
        .map(|j| inner.clone().map(|t| s[t][j].tanh()).sum())
        .collect();
    let kept: Vec<usize> = (0..n).filter(|&t| s[t][0] > 0.0).collect();
    let b: Vec<f64> = (0..F)
        .map(|j| kept.last().map_or(0.0, |&t| s[t][j] * s[t][j]))
        .collect();
    let tail = slice_range(n, -3, 0);
    let c: Vec<f64> = (0..F)
        .map(|j| tail.clone().map(|t| s[t][j]).fold(f64::MIN, f64::max))
        .collect();
    (0..F).flat_map(|j| [a[j], b[j], c[j]]).collect()
}

/// The model's rows and d(Σ out · r)/dx per sequence (valid steps only), padded to `steps`.
fn outputs_and_gradients(
    seqs: &[Vec<f32>],
    steps: usize,
    r: &[f32],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>) {
    let batch = pack(seqs, F, steps);
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let y = model(&g, x);
    let rin = g.input("r", &[3 * F]).unwrap();
    let loss = g.reduce_sum(g.mul(y, rin).unwrap(), &[]).unwrap();
    let dx = g.grad(loss, &[x]).unwrap()[0];
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.push((rin, r));
    let out = ex.eval(&[y, dx], &feed).unwrap();
    let rows = out[0].chunks(3 * F).map(|c| c.to_vec()).collect();
    (rows, batch.unpack(&out[1]).unwrap(), out[1].clone())
}

#[test]
fn selecting_ops_have_finite_difference_gradients_and_ignore_padding() {
    let lengths = [1, 7, 3, 4];
    let mut seqs = sequences(&lengths, F, 11);
    seqs[0][0] = -0.5;
    let r = rand_vec(lengths.len() * 3 * F, 12);
    let (out, dx, dx_padded) = outputs_and_gradients(&seqs, 7, &r);
    for (k, s) in seqs.iter().enumerate() {
        let rows: Vec<Vec<f64>> = s.chunks(F).map(to64).collect();
        assert_close(&format!("out {k}"), &out[k], &model_ref(&rows), 1e-5);
        let rk = to64(&r[k * 3 * F..(k + 1) * 3 * F]);
        let loss = |rows: &[Vec<f64>]| -> f64 {
            model_ref(rows).iter().zip(&rk).map(|(a, b)| a * b).sum()
        };
        let mut want = Vec::new();
        for t in 0..rows.len() {
            for j in 0..F {
                let h = 1e-5;
                let mut p = rows.clone();
                p[t][j] += h;
                let lp = loss(&p);
                p[t][j] -= 2.0 * h;
                want.push((lp - loss(&p)) / (2.0 * h));
            }
        }
        assert_close(&format!("dx {k}"), &dx[k], &want, 1e-3);
    }
    // Padding steps get no gradient.
    for (k, &l) in lengths.iter().enumerate() {
        let pad = &dx_padded[(k * 7 + l) * F..(k + 1) * 7 * F];
        assert!(pad.iter().all(|&v| v == 0.0), "dx padding of sequence {k}");
    }
    // Each sequence alone and with more padding gives the same results.
    let (out_p, dx_p, _) = outputs_and_gradients(&seqs, 10, &r);
    for k in 0..seqs.len() {
        let rk = &r[k * 3 * F..(k + 1) * 3 * F];
        let (o1, d1, _) = outputs_and_gradients(&seqs[k..k + 1], lengths[k], rk);
        for (what, got, want) in [
            ("padded out", &out_p[k], &out[k]),
            ("padded dx", &dx_p[k], &dx[k]),
            ("alone out", &o1[0], &out[k]),
            ("alone dx", &d1[0], &dx[k]),
        ] {
            assert_close(&format!("{what} {k}"), got, &to64(want), 1e-6);
        }
    }
}

/// Letters on the first axis, phonemes on a second: per phoneme step, y + Σ of the word's
/// letters (summed over features), and the phonemes' past values starting from the
/// word's last letter's first three features.
#[test]
fn two_input_axes_keep_their_own_lengths() {
    let (letters, phonemes) = ([3usize, 1, 5], [2usize, 4, 1]);
    let xs = sequences(&letters, F, 21);
    let ys = sequences(&phonemes, 3, 31);
    let (bx, by) = (pack(&xs, F, 5), pack(&ys, 3, 6));
    let g = Graph::new();
    let x = g.input_sequence("letters", &[F]).unwrap();
    let phones = g.sequence_axis("phoneme lengths").unwrap();
    let y = g.input_sequence_on(phones, "phonemes", &[3]).unwrap();
    assert_eq!(g.shape(y).to_string(), "[batch, seq1, 3]");
    let total = g
        .reduce_sum(g.sequence_reduce_sum(x).unwrap(), &[-1])
        .unwrap();
    let total = g.reshape(total, wgrad::Shape::batched(&[1])).unwrap();
    let sum = g
        .add(y, g.sequence_broadcast_as(total, y).unwrap())
        .unwrap();
    let last = g.slice(g.sequence_last(x).unwrap(), -1, 0, 3).unwrap();
    let past = g.past_value(y, last).unwrap();
    let mask = g.sequence_mask_like(y).unwrap();
    let e = g.add(x, y).unwrap_err().to_string();
    assert!(e.contains("seq1"), "{e}");

    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut feed = bx.feed(x, g.sequence_lengths()).to_vec();
    feed.extend(by.feed(y, g.axis_lengths(phones)));
    let out = ex.eval(&[sum, past, mask], &feed).unwrap();
    let (mut want_sum, mut want_past, mut want_mask) = (vec![], vec![], vec![]);
    for k in 0..3 {
        let t: f64 = xs[k].iter().map(|&v| v as f64).sum();
        let lx = letters[k];
        let last: Vec<f64> = to64(&xs[k][(lx - 1) * F..(lx - 1) * F + 3]);
        for s in 0..6 {
            let valid = s < phonemes[k];
            let yv = |s: usize| to64(&ys[k][s * 3..s * 3 + 3]);
            want_mask.push(valid as u8 as f64);
            if !valid {
                want_sum.extend([0.0; 3]);
                want_past.extend([0.0; 3]);
                continue;
            }
            want_sum.extend(yv(s).iter().map(|v| v + t));
            want_past.extend(if s == 0 { last.clone() } else { yv(s - 1) });
        }
    }
    assert_close("broadcast onto the second axis", &out[0], &want_sum, 1e-5);
    assert_close("past_value on the second axis", &out[1], &want_past, 1e-6);
    assert_close("mask of the second axis", &out[2], &want_mask, 0.0);

    // Feeds that leave out the second axis's lengths, or disagree on the batch.
    let e = ex.eval(&[sum], &feed[..3]).unwrap_err().to_string();
    assert!(
        e.contains("'phoneme lengths'") && e.contains("not fed"),
        "{e}"
    );
    let two = [1.0f32, 2.0];
    let mut bad = feed.clone();
    bad[3] = (g.axis_lengths(phones), &two[..]);
    let e = ex.eval(&[sum], &bad).unwrap_err().to_string();
    assert!(e.contains("'phoneme lengths' has 2"), "{e}");
}
