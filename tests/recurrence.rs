//! The LSTM scan against a plain-Rust f64 LSTM (CNTK's gate order g, i, f, o) on
//! sequences of lengths like [1, 7, 3] and hidden sizes 1, 3 and 37; its gradients by finite
//! differences through 20+ steps, with initial states and going backwards; padding and batch
//! invariance; and a plan that does not grow with the length. Each check runs on both LSTM
//! kernels: the one-kernel scan and the stepwise one (a tuned product and a cell kernel per
//! step, which CPU adapters use from 32 units).

#![allow(
    clippy::type_complexity,
    clippy::needless_range_loop,
    clippy::too_many_arguments
)]

mod common;
#[path = "../examples/lstm_sine.rs"]
#[allow(dead_code)]
mod lstm_sine;
use std::cell::Cell;

use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Context, ContextOptions, Executor, Graph, LstmKernels, NodeId, Shape};

thread_local! {
    /// The LSTM kernels of this test thread's contexts.
    static KERNELS: Cell<LstmKernels> = const { Cell::new(LstmKernels::Scan) };
}

/// A poisoning context with this thread's LSTM kernels.
fn ctx() -> Context {
    let options = ContextOptions {
        poison: true,
        lstm: KERNELS.get(),
        ..Default::default()
    };
    Context::with_options(options).expect("GPU tests need a wgpu adapter")
}

/// Runs `f` with the one-kernel scan, then with the stepwise kernels.
fn both(f: impl Fn(LstmKernels)) {
    for k in [LstmKernels::Scan, LstmKernels::Steps] {
        println!("LSTM kernels: {k:?}");
        KERNELS.set(k);
        f(k);
    }
}

const F: usize = 5;
const FORGET_BIAS: f64 = 1.0;

/// Parameters of the reference: W [F, 4H], U [H, 4H], b [4H], h0 [H], c0 [H].
struct Params {
    h: usize,
    w: Vec<f64>,
    u: Vec<f64>,
    b: Vec<f64>,
    h0: Vec<f64>,
    c0: Vec<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// f64 LSTM over one sequence (steps of F values): the hidden state of every step, in the
/// sequence's own step order.
fn lstm_ref(p: &Params, xs: &[Vec<f64>], backwards: bool) -> Vec<Vec<f64>> {
    let hn = p.h;
    let (mut h, mut c) = (p.h0.clone(), p.c0.clone());
    let mut out = vec![Vec::new(); xs.len()];
    let order: Vec<usize> = if backwards {
        (0..xs.len()).rev().collect()
    } else {
        (0..xs.len()).collect()
    };
    for t in order {
        let z: Vec<f64> = (0..4 * hn)
            .map(|q| {
                p.b[q]
                    + (0..F).map(|i| xs[t][i] * p.w[i * 4 * hn + q]).sum::<f64>()
                    + (0..hn).map(|j| h[j] * p.u[j * 4 * hn + q]).sum::<f64>()
            })
            .collect();
        for j in 0..hn {
            let g = z[j].tanh();
            let i = sigmoid(z[hn + j]);
            let f = sigmoid(z[2 * hn + j] + FORGET_BIAS);
            let o = sigmoid(z[3 * hn + j]);
            c[j] = f * c[j] + i * g;
            h[j] = o * c[j].tanh();
        }
        out[t] = h.clone();
    }
    out
}

fn random_params(hn: usize, seed: u64) -> Params {
    let v = |n: usize, s: u64, scale: f32| {
        to64(&rand_vec(n, s).iter().map(|x| x * scale).collect::<Vec<_>>())
    };
    Params {
        h: hn,
        w: v(F * 4 * hn, seed, 0.6),
        u: v(hn * 4 * hn, seed + 1, 0.6),
        b: v(4 * hn, seed + 2, 0.3),
        h0: v(hn, seed + 3, 0.5),
        c0: v(hn, seed + 4, 0.5),
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The graph: the LSTM with its weights and initial states fed as fixed inputs (so that
/// finite differences can move them), and `readout` turning the hidden states into per-
/// sequence values `[batch, k]`. Returns (x, [w, u, b, h0, c0], h, readout).
fn lstm_graph(g: &Graph, hn: usize, backwards: bool) -> (NodeId, Vec<NodeId>, NodeId, NodeId) {
    let x = g.input_sequence("x", &[F]).unwrap();
    let fixed = |name: &str, d: &[usize]| g.input_with_shape(name, Shape::fixed(d)).unwrap();
    let ws = vec![
        fixed("w", &[F, 4 * hn]),
        fixed("u", &[hn, 4 * hn]),
        fixed("b", &[4 * hn]),
        fixed("h0", &[hn]),
        fixed("c0", &[hn]),
    ];
    let (h, _) = g
        .lstm(
            x,
            ws[0],
            ws[1],
            ws[2],
            ws[3],
            ws[4],
            backwards,
            FORGET_BIAS as f32,
        )
        .unwrap();
    // Both the last state and every step's state feed the readout.
    let readout = g
        .concat(
            g.sequence_last(h).unwrap(),
            g.sequence_reduce_sum(g.tanh(h).unwrap()).unwrap(),
            -1,
        )
        .unwrap();
    (x, ws, h, readout)
}

/// The readout's f64 reference for one sequence.
fn readout_ref(p: &Params, xs: &[Vec<f64>], backwards: bool) -> Vec<f64> {
    let hs = lstm_ref(p, xs, backwards);
    let mut out = hs[hs.len() - 1].clone();
    out.extend((0..p.h).map(|j| hs.iter().map(|h| h[j].tanh()).sum::<f64>()));
    out
}

fn sequences(lengths: &[usize], seed: u64) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, seed + 10 * k as u64))
        .collect()
}

/// Runs the graph on `seqs`: the hidden states per sequence (valid steps), the readout per
/// sequence, and the gradients of Σ readout · r with respect to x (per sequence) and to
/// [w, u, b, h0, c0].
fn run_lstm(
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
    let (x, ws, h, readout) = lstm_graph(&g, hn, backwards);
    let rin = g.input("r", &[2 * hn]).unwrap();
    let loss = g.reduce_sum(g.mul(readout, rin).unwrap(), &[]).unwrap();
    let mut wrt = vec![x];
    wrt.extend(&ws);
    let grads = g.grad(loss, &wrt).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let data: Vec<Vec<f32>> = [&p.w, &p.u, &p.b, &p.h0, &p.c0]
        .iter()
        .map(|v| f32s(v))
        .collect();
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

fn steps_of(s: &[f32]) -> Vec<Vec<f64>> {
    s.chunks(F).map(to64).collect()
}

#[test]
fn lstm_scan_matches_the_reference_in_both_directions() {
    both(|kernels| {
        // Batches of more than one workgroup's sequences (4, or 2 above 256 units) and hidden
        // sizes that are not multiples of 4 on both sides of 256.
        let cases = [
            (1, vec![1, 7, 3]),
            (3, vec![1, 7, 3]),
            (37, vec![4, 2]),
            (5, vec![3, 1, 6, 2, 5, 4, 1, 7, 2]),
            (259, vec![2, 3, 1]),
        ];
        for (hn, lengths) in cases {
            for backwards in [false, true] {
                let p = random_params(hn, 3 + hn as u64);
                let seqs = sequences(&lengths, 7);
                let steps = *lengths.iter().max().unwrap();
                let r = rand_vec(lengths.len() * 2 * hn, 5);
                let (hs, ro, _, _) = run_lstm(&p, &seqs, steps, &r, backwards);
                for (k, s) in seqs.iter().enumerate() {
                    let xs = steps_of(s);
                    let want: Vec<f64> =
                        lstm_ref(&p, &xs, backwards).into_iter().flatten().collect();
                    let name = format!("{kernels:?}: H {hn} backwards {backwards} sequence {k}");
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
    });
}

#[test]
fn a_recurrence_over_one_step_is_one_cell_step() {
    both(|_| {
        let p = random_params(3, 40);
        let seqs = sequences(&[1], 41);
        let (hs, _, _, _) = run_lstm(&p, &seqs, 1, &rand_vec(6, 1), false);
        let x = steps_of(&seqs[0]);
        // One cell step by hand.
        let hn = 3;
        let z: Vec<f64> = (0..12)
            .map(|q| {
                p.b[q]
                    + (0..F).map(|i| x[0][i] * p.w[i * 12 + q]).sum::<f64>()
                    + (0..hn).map(|j| p.h0[j] * p.u[j * 12 + q]).sum::<f64>()
            })
            .collect();
        let want: Vec<f64> = (0..hn)
            .map(|j| {
                let c = sigmoid(z[2 * hn + j] + FORGET_BIAS) * p.c0[j]
                    + sigmoid(z[hn + j]) * z[j].tanh();
                sigmoid(z[3 * hn + j]) * c.tanh()
            })
            .collect();
        assert_close("one step", &hs[0], &want, 1e-5);
    });
}

#[test]
fn lstm_gradients_match_finite_differences_through_twenty_steps() {
    both(|_| {
        for backwards in [false, true] {
            check_lstm_gradients(3, &[22, 1, 5], backwards, 1);
            // Two workgroups of sequences, lengths mixed within each.
            check_lstm_gradients(5, &[21, 1, 5, 3, 9, 2], backwards, 1);
        }
    });
}

/// Above 256 hidden units the scans give each workgroup fewer sequences: the gradients
/// there, checked on every input and on a sample of each parameter's entries.
#[test]
fn lstm_gradients_match_finite_differences_above_256_units() {
    both(|_| {
        check_lstm_gradients(259, &[3, 1, 2], false, 20);
    });
}

/// Central differences of a random readout of [`lstm_ref`] against the planned BPTT: every
/// input, and of each parameter every entry (`samples` 1) or about `samples` of them spread
/// over it.
fn check_lstm_gradients(hn: usize, lengths: &[usize], backwards: bool, samples: usize) {
    let p = random_params(hn, 50 + hn as u64);
    let seqs = sequences(lengths, 51);
    let n_seq = lengths.len();
    let r = rand_vec(n_seq * 2 * hn, 52);
    let steps = *lengths.iter().max().unwrap();
    let (_, _, dx, dparams) = run_lstm(&p, &seqs, steps, &r, backwards);
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
    let xs: Vec<Vec<Vec<f64>>> = seqs.iter().map(|s| steps_of(s)).collect();
    let label = format!("H {hn} lengths {lengths:?} backwards {backwards}");
    // Inputs, one sequence at a time.
    for k in 0..n_seq {
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
        assert_close(&format!("{label}: d/dx {k}"), &dx[k], &want, 2e-3);
    }
    // W, U, b, h0, c0.
    for (which, name) in ["w", "u", "b", "h0", "c0"].iter().enumerate() {
        let n = dparams[which].len();
        let stride = if samples == 1 {
            1
        } else {
            n.div_ceil(samples) | 1
        };
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for i in (0..n).step_by(stride) {
            let moved = |d: f64| {
                let mut q = Params {
                    h: hn,
                    w: p.w.clone(),
                    u: p.u.clone(),
                    b: p.b.clone(),
                    h0: p.h0.clone(),
                    c0: p.c0.clone(),
                };
                let v = [&mut q.w, &mut q.u, &mut q.b, &mut q.h0, &mut q.c0];
                v.into_iter().nth(which).unwrap()[i] += d;
                loss(&q, &xs)
            };
            got.push(dparams[which][i]);
            want.push((moved(1e-5) - moved(-1e-5)) / 2e-5);
        }
        assert_close(&format!("{label}: d/d{name}"), &got, &want, 2e-3);
    }
}

#[test]
fn a_sequence_gives_the_same_results_alone_padded_and_in_a_batch() {
    both(|_| {
        let hn = 3;
        let p = random_params(hn, 60);
        // Six sequences: two workgroups' worth, each sequence's neighbours differing in length.
        let seqs = sequences(&[4, 1, 7, 3, 2, 6], 61);
        let r = rand_vec(6 * 2 * hn, 62);
        let (hs, _, dx, _) = run_lstm(&p, &seqs, 7, &r, false);
        let (hs_p, _, dx_p, _) = run_lstm(&p, &seqs, 12, &r, false);
        for k in 0..6 {
            assert_close(&format!("padded h {k}"), &hs_p[k], &to64(&hs[k]), 1e-6);
            assert_close(&format!("padded dx {k}"), &dx_p[k], &to64(&dx[k]), 1e-6);
            let one = &r[k * 2 * hn..(k + 1) * 2 * hn];
            let (h1, _, d1, _) = run_lstm(&p, &seqs[k..k + 1], seqs[k].len() / F, one, false);
            assert_close(&format!("alone h {k}"), &h1[0], &to64(&hs[k]), 1e-6);
            assert_close(&format!("alone dx {k}"), &d1[0], &to64(&dx[k]), 1e-6);
        }
    });
}

#[test]
fn going_backwards_equals_reversing_input_and_output() {
    both(|_| {
        let hn = 3;
        let p = random_params(hn, 70);
        let seqs = sequences(&[6, 2], 71);
        let reversed: Vec<Vec<f32>> = seqs
            .iter()
            .map(|s| s.chunks(F).rev().flatten().copied().collect())
            .collect();
        let r = rand_vec(2 * 2 * hn, 72);
        let (back, _, _, _) = run_lstm(&p, &seqs, 6, &r, true);
        let (fwd, _, _, _) = run_lstm(&p, &reversed, 6, &r, false);
        for k in 0..2 {
            let rev: Vec<f32> = fwd[k].chunks(hn).rev().flatten().copied().collect();
            assert_close(&format!("sequence {k}"), &back[k], &to64(&rev), 1e-6);
        }
    });
}

/// A training step's plan has one scan and one reverse scan whatever the length (or, run
/// one step at a time, one loop body forwards of a product and a cell, and one backwards of
/// two products and a cell, replayed once per step), and the same dispatches for 5 steps as
/// for 50.
#[test]
fn the_plan_does_not_grow_with_the_length() {
    both(|kernels| {
        use wgrad::nn::{Dense, Sequential};
        let ctx = ctx();
        let g = Graph::with_seed(1);
        let x = g.input_sequence("x", &[F]).unwrap();
        let hn = 4;
        let w = g
            .parameter("w", &[F, 4 * hn], wgrad::Init::GlorotUniform)
            .unwrap();
        let u = g
            .parameter("u", &[hn, 4 * hn], wgrad::Init::GlorotUniform)
            .unwrap();
        let b = g.parameter("b", &[4 * hn], wgrad::Init::Zeros).unwrap();
        let zero = g.scalar(0.0);
        let (h, _) = g.lstm(x, w, u, b, zero, zero, false, 1.0).unwrap();
        let y = Sequential::new()
            .add(Dense::new(1))
            .build(&g, g.sequence_last(h).unwrap())
            .unwrap();
        let t = g.input("t", &[1]).unwrap();
        let d = g.sub(y, t).unwrap();
        let loss = g.reduce_sum(g.mul(d, d).unwrap(), &[-1]).unwrap();
        let learner = wgrad::Learner::adam(0.01);
        let mut tr = wgrad::Trainer::new(&ctx, &g, loss, None, learner).unwrap();
        let mut counts = Vec::new();
        for len in [5, 50] {
            let seqs = sequences(&[len, 2], 80);
            let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
            let batch = SequenceBatch::pack(&refs, F).unwrap();
            let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
            let td = [0.5f32, -0.5];
            feed.push((t, &td));
            tr.train_minibatch(&feed, true).unwrap();
            let plan = tr.executor().plan_summary(&[], &feed, true).unwrap();
            if kernels == LstmKernels::Scan {
                assert_eq!(plan.count_entry("lstm_forward"), 1, "{plan}");
                assert_eq!(plan.count_entry("lstm_backward"), 1, "{plan}");
                assert!(plan.loops.is_empty());
            } else {
                assert_eq!(plan.count_entry("lstm_step_forward"), 1, "{plan}");
                assert_eq!(plan.count_entry("lstm_step_backward"), 1, "{plan}");
                // Per step: forwards 2 dispatches (the product and the cell), backwards 2
                // (the cell from the kept gates, then dz·Uᵀ), each replayed len times.
                let bodies: Vec<(usize, usize)> =
                    plan.loops.iter().map(|l| (l.len, l.times)).collect();
                assert_eq!(bodies, [(2, len), (2, len)], "{plan}");
            }
            counts.push(plan.len());
        }
        assert_eq!(counts[0], counts[1]);
    });
}

#[test]
fn lstm_rejects_wrong_shapes() {
    let g = Graph::new();
    let x = g.input_sequence("x", &[9]).unwrap();
    let u = g.input_with_shape("u", Shape::fixed(&[2, 8])).unwrap();
    let z = g.scalar(0.0);
    let e = g.lstm_scan(x, u, z, z, false, 0.0).unwrap_err().to_string();
    assert!(e.contains("lstm") && e.contains("projections"), "{e}");
    let u = g.input_with_shape("u3", Shape::fixed(&[2, 9])).unwrap();
    let e = g.lstm_scan(x, u, z, z, false, 0.0).unwrap_err().to_string();
    assert!(e.contains("[H, 4H]"), "{e}");
    let big = g
        .input_with_shape("ubig", Shape::fixed(&[600, 2400]))
        .unwrap();
    let e = g
        .lstm_scan(x, big, z, z, false, 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("600") && e.contains("512"), "{e}");
}

/// CNTK 106A in a small configuration: 3 epochs of the tutorial's model bring the test MSE
/// far below that of predicting the mean (about 0.5).
#[test]
fn the_sine_example_learns_in_three_epochs() {
    let ctx = ctx();
    for model in ["lstm", "gru", "rnn"] {
        let mse = lstm_sine::train(
            &ctx,
            model,
            wgrad::Learner::adam(0.02),
            3,
            0,
            0.2,
            0.0,
            false,
            false,
        )
        .unwrap();
        assert!(mse.mse < 2e-2, "{model}: test MSE {}", mse.mse);
        // CNTK's get_mse: 9 minibatch means over 999 windows.
        let ratio = mse.cntk / mse.mse;
        assert!((0.002..0.02).contains(&ratio), "{model}: {mse:?}");
    }
}

/// Stacked and bidirectional layers: a Bidirectional LSTM's steps join the forward LSTM's
/// state and the backward one's, which equals the forward LSTM run on the reversed sequence.
#[test]
fn bidirectional_and_stacked_layers() {
    use wgrad::nn::{Bidirectional, Lstm, Sequential};
    let seqs = sequences(&[4, 2], 90);
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, F).unwrap();
    let g = Graph::with_seed(9);
    let x = g.input_sequence("x", &[F]).unwrap();
    let bi = Sequential::new()
        .add(Bidirectional(Lstm::new(3)))
        .build(&g, x)
        .unwrap();
    let stacked = Sequential::new()
        .add(Lstm::new(3))
        .add(Lstm::new(2))
        .build(&g, bi)
        .unwrap();
    assert_eq!(g.shape(bi).to_string(), "[batch, seq, 6]");
    assert_eq!(g.shape(stacked).to_string(), "[batch, seq, 2]");
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let feed = batch.feed(x, g.sequence_lengths());
    let got = batch.unpack(&ex.eval(&[bi], &feed).unwrap()[0]).unwrap();
    let param = |n: &str| to64(&ex.parameter(g.find(n).unwrap()).unwrap());
    let p = |dir: &str| Params {
        h: 3,
        w: param(&format!("bilstm1.{dir}.W")),
        u: param(&format!("bilstm1.{dir}.U")),
        b: param(&format!("bilstm1.{dir}.b")),
        h0: vec![0.0; 3],
        c0: vec![0.0; 3],
    };
    let (pf, pb) = (p("fwd"), p("bwd"));
    // The layer's forget bias is 1, as the reference's.
    for (k, s) in seqs.iter().enumerate() {
        let xs = steps_of(s);
        let (f, b) = (lstm_ref(&pf, &xs, false), lstm_ref(&pb, &xs, true));
        let want: Vec<f64> = (0..xs.len())
            .flat_map(|t| [f[t].clone(), b[t].clone()].concat())
            .collect();
        assert_close(&format!("bidirectional {k}"), &got[k], &want, 1e-5);
    }
    assert!(ex.eval(&[stacked], &feed).unwrap()[0]
        .iter()
        .all(|v| v.is_finite()));
}
