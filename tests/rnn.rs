//! The plain RNN scan (h' = tanh(x·W + b + h·U)) against an f64 reference, its gradients by
//! finite differences through 21 steps in both directions (inputs, weights, bias and the
//! initial state), and a sequence's results alone and inside a padded batch.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Executor, Graph, Shape};

const F: usize = 3;

/// W [F, H], U [H, H], b [H], h0 [H] as one list of f64 vectors.
fn rnn_ref(p: &[Vec<f64>], hn: usize, xs: &[Vec<f64>], backwards: bool) -> Vec<Vec<f64>> {
    let (w, u, b) = (&p[0], &p[1], &p[2]);
    let mut h = p[3].clone();
    let mut out = vec![Vec::new(); xs.len()];
    let order: Vec<usize> = if backwards {
        (0..xs.len()).rev().collect()
    } else {
        (0..xs.len()).collect()
    };
    for t in order {
        h = (0..hn)
            .map(|q| {
                (b[q]
                    + (0..F).map(|i| xs[t][i] * w[i * hn + q]).sum::<f64>()
                    + (0..hn).map(|j| h[j] * u[j * hn + q]).sum::<f64>())
                .tanh()
            })
            .collect();
        out[t] = h.clone();
    }
    out
}

/// Per sequence: Σ_t h_t · r (one value), its reference, and the gradients.
fn run_rnn(
    p: &[Vec<f64>],
    hn: usize,
    seqs: &[Vec<f32>],
    steps: usize,
    r: &[f32],
    backwards: bool,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack_to(&refs, F, steps).unwrap();
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let dims = [vec![F, hn], vec![hn, hn], vec![hn], vec![hn]];
    let ws: Vec<_> = ["w", "u", "b", "h0"]
        .iter()
        .zip(&dims)
        .map(|(n, d)| g.input_with_shape(n, Shape::fixed(d)).unwrap())
        .collect();
    let h = g.rnn(x, ws[0], ws[1], ws[2], ws[3], backwards).unwrap();
    let rin = g.input("r", &[hn]).unwrap();
    let per_seq = g
        .sequence_reduce_sum(g.mul(h, g.sequence_broadcast(rin).unwrap()).unwrap())
        .unwrap();
    let loss = g.reduce_sum(per_seq, &[]).unwrap();
    let mut wrt = vec![x];
    wrt.extend(&ws);
    let grads = g.grad(loss, &wrt).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let data: Vec<Vec<f32>> = p
        .iter()
        .map(|v| v.iter().map(|&a| a as f32).collect())
        .collect();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.extend(ws.iter().zip(&data).map(|(&n, d)| (n, &d[..])));
    feed.push((rin, r));
    let mut outs = vec![h];
    outs.extend(&grads);
    let got = ex.eval(&outs, &feed).unwrap();
    (
        batch.unpack(&got[0]).unwrap(),
        batch.unpack(&got[1]).unwrap(),
        got[2..].to_vec(),
    )
}

fn params(hn: usize, seed: u64) -> Vec<Vec<f64>> {
    [F * hn, hn * hn, hn, hn]
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            to64(&rand_vec(n, seed + k as u64))
                .iter()
                .map(|v| v * 0.7)
                .collect()
        })
        .collect()
}

#[test]
fn rnn_scan_matches_the_reference_and_finite_differences() {
    for backwards in [false, true] {
        for hn in [1, 3, 37] {
            let p = params(hn, 10 + hn as u64);
            let lengths = [1usize, 21, 5];
            let seqs: Vec<Vec<f32>> = lengths
                .iter()
                .enumerate()
                .map(|(k, &l)| rand_vec(l * F, 20 + k as u64))
                .collect();
            let r = rand_vec(3 * hn, 30);
            let (hs, dx, dp) = run_rnn(&p, hn, &seqs, 21, &r, backwards);
            let xs: Vec<Vec<Vec<f64>>> = seqs
                .iter()
                .map(|s| s.chunks(F).map(to64).collect())
                .collect();
            for k in 0..3 {
                let want: Vec<f64> = rnn_ref(&p, hn, &xs[k], backwards)
                    .into_iter()
                    .flatten()
                    .collect();
                // f32 through 21 steps of 37-wide recurrent products: 1e-4.
                assert_close(
                    &format!("H {hn} backwards {backwards} h {k}"),
                    &hs[k],
                    &want,
                    1e-4,
                );
            }
            if hn == 37 {
                continue;
            }
            let loss = |p: &[Vec<f64>], xs: &[Vec<Vec<f64>>]| -> f64 {
                xs.iter()
                    .enumerate()
                    .map(|(k, x)| {
                        rnn_ref(p, hn, x, backwards)
                            .iter()
                            .map(|h| (0..hn).map(|j| h[j] * r[k * hn + j] as f64).sum::<f64>())
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
                let want: Vec<f64> = (0..p[which].len())
                    .map(|i| {
                        let moved = |d: f64| {
                            let mut q = p.clone();
                            q[which][i] += d;
                            loss(&q, &xs)
                        };
                        (moved(1e-5) - moved(-1e-5)) / 2e-5
                    })
                    .collect();
                assert_close(
                    &format!("backwards {backwards}: d/d{name}"),
                    &dp[which],
                    &want,
                    2e-3,
                );
            }
        }
    }
}

#[test]
fn an_rnn_sequence_gives_the_same_results_alone_and_in_a_padded_batch() {
    let hn = 4;
    let p = params(hn, 40);
    let seqs: Vec<Vec<f32>> = [3usize, 1, 6]
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, 50 + k as u64))
        .collect();
    let r = rand_vec(3 * hn, 60);
    let (hs, dx, _) = run_rnn(&p, hn, &seqs, 9, &r, false);
    for k in 0..3 {
        let (h1, d1, _) = run_rnn(
            &p,
            hn,
            &seqs[k..k + 1],
            seqs[k].len() / F,
            &r[k * hn..(k + 1) * hn],
            false,
        );
        assert_close(&format!("alone h {k}"), &h1[0], &to64(&hs[k]), 1e-6);
        assert_close(&format!("alone dx {k}"), &d1[0], &to64(&dx[k]), 1e-6);
    }
}
