//! The GRU scan against a plain-Rust f64 GRU in CNTK's convention (h' = (1 - z)·c + z·h,
//! c = tanh(x·Wc + (r ⊙ h)·Uc)), lengths like [1, 7, 3] and hidden sizes 1, 3 and 37; its
//! gradients by finite differences through 20+ steps in both directions, with a learned
//! initial state; and padding and batch invariance.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Executor, Graph, Shape};

const F: usize = 4;

/// W [F, 3H], U [H, 3H], b [3H], h0 [H].
#[derive(Clone)]
struct Params {
    h: usize,
    w: Vec<f64>,
    u: Vec<f64>,
    b: Vec<f64>,
    h0: Vec<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// The hidden states of one sequence, in its own step order.
fn gru_ref(p: &Params, xs: &[Vec<f64>], backwards: bool) -> Vec<Vec<f64>> {
    let hn = p.h;
    let g3 = 3 * hn;
    let mut h = p.h0.clone();
    let mut out = vec![Vec::new(); xs.len()];
    let order: Vec<usize> = if backwards {
        (0..xs.len()).rev().collect()
    } else {
        (0..xs.len()).collect()
    };
    for t in order {
        let px = |q: usize| p.b[q] + (0..F).map(|i| xs[t][i] * p.w[i * g3 + q]).sum::<f64>();
        let ph = |q: usize, v: &[f64]| (0..hn).map(|j| v[j] * p.u[j * g3 + q]).sum::<f64>();
        let z: Vec<f64> = (0..hn).map(|q| sigmoid(px(q) + ph(q, &h))).collect();
        let r: Vec<f64> = (0..hn)
            .map(|q| sigmoid(px(hn + q) + ph(hn + q, &h)))
            .collect();
        let rh: Vec<f64> = (0..hn).map(|j| r[j] * h[j]).collect();
        let c: Vec<f64> = (0..hn)
            .map(|q| (px(2 * hn + q) + ph(2 * hn + q, &rh)).tanh())
            .collect();
        h = (0..hn).map(|q| (1.0 - z[q]) * c[q] + z[q] * h[q]).collect();
        out[t] = h.clone();
    }
    out
}

fn random_params(hn: usize, seed: u64) -> Params {
    let v =
        |n: usize, s: u64, k: f32| to64(&rand_vec(n, s).iter().map(|x| x * k).collect::<Vec<_>>());
    Params {
        h: hn,
        w: v(F * 3 * hn, seed, 0.7),
        u: v(hn * 3 * hn, seed + 1, 0.7),
        b: v(3 * hn, seed + 2, 0.3),
        h0: v(hn, seed + 3, 0.5),
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The per-sequence readout: the last state and Σ_t tanh(h_t).
fn readout_ref(p: &Params, xs: &[Vec<f64>], backwards: bool) -> Vec<f64> {
    let hs = gru_ref(p, xs, backwards);
    let mut out = hs[hs.len() - 1].clone();
    out.extend((0..p.h).map(|j| hs.iter().map(|h| h[j].tanh()).sum::<f64>()));
    out
}

/// Hidden states and readouts per sequence, and the gradients of Σ readout · r with respect
/// to x (per sequence) and to [w, u, b, h0].
fn run_gru(
    p: &Params,
    seqs: &[Vec<f32>],
    steps: usize,
    r: &[f32],
    backwards: bool,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let hn = p.h;
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack_to(&refs, F, steps).unwrap();
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let fixed = |name: &str, d: &[usize]| g.input_with_shape(name, Shape::fixed(d)).unwrap();
    let ws = [
        fixed("w", &[F, 3 * hn]),
        fixed("u", &[hn, 3 * hn]),
        fixed("b", &[3 * hn]),
        fixed("h0", &[hn]),
    ];
    let h = g.gru(x, ws[0], ws[1], ws[2], ws[3], backwards).unwrap();
    let readout = g
        .concat(
            g.sequence_last(h).unwrap(),
            g.sequence_reduce_sum(g.tanh(h).unwrap()).unwrap(),
            -1,
        )
        .unwrap();
    let rin = g.input("r", &[2 * hn]).unwrap();
    let loss = g.reduce_sum(g.mul(readout, rin).unwrap(), &[]).unwrap();
    let mut wrt = vec![x];
    wrt.extend(ws);
    let grads = g.grad(loss, &wrt).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let data: Vec<Vec<f32>> = [&p.w, &p.u, &p.b, &p.h0].iter().map(|v| f32s(v)).collect();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.extend(ws.iter().zip(&data).map(|(&n, d)| (n, &d[..])));
    feed.push((rin, r));
    let mut outs = vec![h, readout];
    outs.extend(&grads);
    let got = ex.eval(&outs, &feed).unwrap();
    let hs = batch.unpack(&got[0]).unwrap();
    let ro = got[1].chunks(2 * hn).map(|c| c.to_vec()).collect();
    let dx = batch.unpack(&got[2]).unwrap();
    (hs, ro, dx, got[3..].to_vec())
}

fn sequences(lengths: &[usize], seed: u64) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, seed + 10 * k as u64))
        .collect()
}

fn steps_of(s: &[f32]) -> Vec<Vec<f64>> {
    s.chunks(F).map(to64).collect()
}

#[test]
fn gru_scan_matches_the_reference_in_both_directions() {
    for (hn, lengths) in [(1, vec![1, 7, 3]), (3, vec![1, 7, 3]), (37, vec![4, 2])] {
        for backwards in [false, true] {
            let p = random_params(hn, 3 + hn as u64);
            let seqs = sequences(&lengths, 7);
            let steps = *lengths.iter().max().unwrap();
            let (hs, ro, _, _) = run_gru(
                &p,
                &seqs,
                steps,
                &rand_vec(lengths.len() * 2 * hn, 5),
                backwards,
            );
            for (k, s) in seqs.iter().enumerate() {
                let xs = steps_of(s);
                let want: Vec<f64> = gru_ref(&p, &xs, backwards).into_iter().flatten().collect();
                let name = format!("H {hn} backwards {backwards} sequence {k}");
                assert_close(&name, &hs[k], &want, 1e-5);
                assert_close(
                    &format!("{name} readout"),
                    &ro[k],
                    &readout_ref(&p, &xs, backwards),
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn gru_gradients_match_finite_differences_through_twenty_steps() {
    for backwards in [false, true] {
        let hn = 3;
        let p = random_params(hn, 50);
        let seqs = sequences(&[21, 1, 5], 51);
        let r = rand_vec(3 * 2 * hn, 52);
        let (_, _, dx, dparams) = run_gru(&p, &seqs, 21, &r, backwards);
        let xs: Vec<Vec<Vec<f64>>> = seqs.iter().map(|s| steps_of(s)).collect();
        let loss = |p: &Params, xs: &[Vec<Vec<f64>>]| -> f64 {
            xs.iter()
                .enumerate()
                .map(|(k, x)| {
                    readout_ref(p, x, backwards)
                        .iter()
                        .zip(&r[k * 2 * hn..])
                        .map(|(a, &b)| a * b as f64)
                        .sum::<f64>()
                })
                .sum()
        };
        for k in 0..3 {
            let mut want = Vec::new();
            for t in 0..xs[k].len() {
                for f in 0..F {
                    let mut q = xs.clone();
                    q[k][t][f] += 1e-5;
                    let lp = loss(&p, &q);
                    q[k][t][f] -= 2e-5;
                    want.push((lp - loss(&p, &q)) / 2e-5);
                }
            }
            assert_close(
                &format!("backwards {backwards}: d/dx {k}"),
                &dx[k],
                &want,
                2e-3,
            );
        }
        for (which, name) in ["w", "u", "b", "h0"].iter().enumerate() {
            let want: Vec<f64> = (0..dparams[which].len())
                .map(|i| {
                    let moved = |d: f64| {
                        let mut q = p.clone();
                        [&mut q.w, &mut q.u, &mut q.b, &mut q.h0]
                            .into_iter()
                            .nth(which)
                            .unwrap()[i] += d;
                        loss(&q, &xs)
                    };
                    (moved(1e-5) - moved(-1e-5)) / 2e-5
                })
                .collect();
            assert_close(
                &format!("backwards {backwards}: d/d{name}"),
                &dparams[which],
                &want,
                2e-3,
            );
        }
    }
}

#[test]
fn a_gru_sequence_gives_the_same_results_alone_padded_and_in_a_batch() {
    let hn = 3;
    let p = random_params(hn, 60);
    let seqs = sequences(&[4, 1, 7, 3], 61);
    let r = rand_vec(4 * 2 * hn, 62);
    let (hs, _, dx, _) = run_gru(&p, &seqs, 7, &r, false);
    let (hs_p, _, dx_p, _) = run_gru(&p, &seqs, 11, &r, false);
    for k in 0..4 {
        assert_close(&format!("padded h {k}"), &hs_p[k], &to64(&hs[k]), 1e-6);
        assert_close(&format!("padded dx {k}"), &dx_p[k], &to64(&dx[k]), 1e-6);
        let one = &r[k * 2 * hn..(k + 1) * 2 * hn];
        let (h1, _, d1, _) = run_gru(&p, &seqs[k..k + 1], seqs[k].len() / F, one, false);
        assert_close(&format!("alone h {k}"), &h1[0], &to64(&hs[k]), 1e-6);
        assert_close(&format!("alone dx {k}"), &d1[0], &to64(&dx[k]), 1e-6);
    }
}

#[test]
fn gru_rejects_wrong_shapes() {
    let g = Graph::new();
    let x = g.input_sequence("x", &[7]).unwrap();
    let u = g.input_with_shape("u", Shape::fixed(&[2, 6])).unwrap();
    let e = g
        .gru_scan(x, u, g.scalar(0.0), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gru") && e.contains("projections"), "{e}");
    let u = g.input_with_shape("u2", Shape::fixed(&[2, 7])).unwrap();
    let e = g
        .gru_scan(x, u, g.scalar(0.0), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[H, 3H]"), "{e}");
}
