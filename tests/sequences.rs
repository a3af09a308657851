//! The sequence axis: packing, the sequence ops against f64 references (lengths like
//! [1, 7, 3], odd feature sizes, poisoned outputs), their gradients by finite differences,
//! padding and batch invariance, and the errors a wrong feed gets.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::data::SequenceBatch;
use wgrad::{Executor, Graph, Init, NodeId};

const F: usize = 5;

/// Sequences of these lengths, F features per step.
fn sequences(lengths: &[usize], seed: u64) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(k, &l)| rand_vec(l * F, seed + k as u64))
        .collect()
}

/// Evaluates `build(g, x)` on the packed sequences and returns the result and the batch.
fn eval(
    seqs: &[Vec<f32>],
    steps: Option<usize>,
    build: impl Fn(&Graph, NodeId) -> NodeId,
) -> (Vec<f32>, SequenceBatch) {
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = match steps {
        Some(s) => SequenceBatch::pack_to(&refs, F, s).unwrap(),
        None => SequenceBatch::pack(&refs, F).unwrap(),
    };
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let y = build(&g, x);
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let out = ex
        .eval(&[y], &batch.feed(x, g.sequence_lengths()))
        .unwrap()
        .remove(0);
    (out, batch)
}

/// One sequence's steps as f64 rows.
fn steps_of(s: &[f32]) -> Vec<Vec<f64>> {
    s.chunks(F).map(to64).collect()
}

#[test]
fn packing_pads_and_unpacks() {
    let seqs = sequences(&[1, 7, 3], 1);
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let b = SequenceBatch::pack(&refs, F).unwrap();
    assert_eq!((b.len(), b.steps()), (3, 7));
    assert_eq!(b.lengths(), &[1.0, 7.0, 3.0]);
    assert_eq!(&b.values()[7 * F..7 * F + 7 * F], &seqs[1][..]);
    assert!(b.values()[F..7 * F].iter().all(|&v| v == 0.0));
    assert_eq!(b.unpack(b.values()).unwrap(), seqs);
    let e = SequenceBatch::pack(&[&[1.0, 2.0][..]], F)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sequence 0") && e.contains("2 values"), "{e}");
    let e = SequenceBatch::pack_to(&refs, F, 5).unwrap_err().to_string();
    assert!(e.contains("7 steps") && e.contains("5 padded"), "{e}");
    assert!(SequenceBatch::pack(&[], F).is_err());
}

#[test]
fn sequence_ops_match_the_reference_and_zero_the_padding() {
    let lengths = [1, 7, 3];
    let seqs = sequences(&lengths, 2);
    let init = rand_vec(F, 9);
    type Reference = Box<dyn Fn(&[Vec<f64>]) -> Vec<Vec<f64>>>;
    let init64 = to64(&init);
    let cases: Vec<(&str, Box<dyn Fn(&Graph, NodeId) -> NodeId>, Reference, bool)> = vec![
        (
            "last",
            Box::new(|g, x| g.sequence_last(x).unwrap()),
            Box::new(|s| vec![s[s.len() - 1].clone()]),
            false,
        ),
        (
            "first",
            Box::new(|g, x| g.sequence_first(x).unwrap()),
            Box::new(|s| vec![s[0].clone()]),
            false,
        ),
        (
            "reduce_sum",
            Box::new(|g, x| g.sequence_reduce_sum(x).unwrap()),
            Box::new(|s| vec![(0..F).map(|f| s.iter().map(|r| r[f]).sum()).collect()]),
            false,
        ),
        (
            "reduce_max",
            Box::new(|g, x| g.sequence_reduce_max(x).unwrap()),
            Box::new(|s| {
                vec![(0..F)
                    .map(|f| s.iter().map(|r| r[f]).fold(f64::MIN, f64::max))
                    .collect()]
            }),
            false,
        ),
        (
            "broadcast of last",
            Box::new(|g, x| g.sequence_broadcast(g.sequence_last(x).unwrap()).unwrap()),
            Box::new(|s| vec![s[s.len() - 1].clone(); s.len()]),
            true,
        ),
        (
            "past_value",
            Box::new({
                let init = init.clone();
                move |g, x| {
                    let c = g
                        .input_with_shape("init", wgrad::Shape::fixed(&[F]))
                        .unwrap();
                    let _ = &init;
                    g.past_value(x, c).unwrap()
                }
            }),
            Box::new({
                let i = init64.clone();
                move |s| {
                    (0..s.len())
                        .map(|t| if t == 0 { i.clone() } else { s[t - 1].clone() })
                        .collect()
                }
            }),
            true,
        ),
        (
            "future_value",
            Box::new(|g, x| {
                let c = g
                    .input_with_shape("init", wgrad::Shape::fixed(&[F]))
                    .unwrap();
                g.future_value(x, c).unwrap()
            }),
            Box::new({
                let i = init64.clone();
                move |s| {
                    (0..s.len())
                        .map(|t| {
                            if t + 1 == s.len() {
                                i.clone()
                            } else {
                                s[t + 1].clone()
                            }
                        })
                        .collect()
                }
            }),
            true,
        ),
    ];
    for (name, build, reference, per_step) in cases {
        let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
        let batch = SequenceBatch::pack(&refs, F).unwrap();
        let g = Graph::new();
        let x = g.input_sequence("x", &[F]).unwrap();
        let y = build(&g, x);
        let mut ex = Executor::new(&ctx(), &g).unwrap();
        let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
        if let Some(c) = g.find("init") {
            feed.push((c, &init[..]));
        }
        let got = ex.eval(&[y], &feed).unwrap().remove(0);
        let mut want = Vec::new();
        for s in &seqs {
            let rows = reference(&steps_of(s));
            let pad = if per_step {
                batch.steps() - rows.len()
            } else {
                0
            };
            want.extend(rows.into_iter().flatten());
            want.extend(std::iter::repeat_n(0.0, pad * F));
        }
        assert_close(name, &got, &want, 1e-5);
    }
}

#[test]
fn the_mask_and_the_token_mean_count_valid_steps_only() {
    let seqs = sequences(&[1, 7, 3], 3);
    let (mask, _) = eval(&seqs, None, |g, _| g.sequence_mask());
    let want: Vec<f64> = [1, 7, 3]
        .iter()
        .flat_map(|&l| (0..7).map(move |t| (t < l) as u8 as f64))
        .collect();
    assert_close("mask", &mask, &want, 0.0);
    let (mean, _) = eval(&seqs, Some(9), |g, x| {
        let per_token = g.reduce_sum(x, &[-1]).unwrap();
        g.sequence_token_mean(per_token).unwrap()
    });
    let total: f64 = seqs.iter().flatten().map(|&v| v as f64).sum();
    assert_close("token mean", &mean, &[total / 11.0], 1e-5);
}

/// A model mixing every sequence op: per-sequence outputs [batch, 2·F].
fn model(g: &Graph, x: NodeId) -> NodeId {
    let w = g.parameter("w", &[F, F], Init::GlorotUniform).unwrap();
    let h = g.tanh(g.matmul(x, w).unwrap()).unwrap();
    let c = g
        .parameter(
            "c",
            &[F],
            Init::Uniform {
                low: -0.5,
                high: 0.5,
            },
        )
        .unwrap();
    let p = g.past_value(h, c).unwrap();
    let q = g
        .future_value(g.mul(h, p).unwrap(), g.scalar(0.25))
        .unwrap();
    let s = g
        .sequence_reduce_sum(
            g.mul(
                q,
                g.sequence_broadcast(g.sequence_first(h).unwrap()).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
    let m = g.sequence_reduce_max(p).unwrap();
    g.concat(g.add(s, g.sequence_last(h).unwrap()).unwrap(), m, -1)
        .unwrap()
}

/// The model's per-sequence outputs and d(Σ out · r)/dx, per sequence (valid steps only),
/// for these sequences padded to `steps`.
fn outputs_and_input_gradients(
    seqs: &[Vec<f32>],
    steps: usize,
    r: &[f32],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack_to(&refs, F, steps).unwrap();
    let g = Graph::with_seed(5);
    let x = g.input_sequence("x", &[F]).unwrap();
    let y = model(&g, x);
    let rin = g.input("r", &[2 * F]).unwrap();
    let loss = g.reduce_sum(g.mul(y, rin).unwrap(), &[]).unwrap();
    let dx = g.grad(loss, &[x]).unwrap()[0];
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let mut feed = batch.feed(x, g.sequence_lengths()).to_vec();
    feed.push((rin, r));
    let out = ex.eval(&[y, dx], &feed).unwrap();
    let per_seq = out[0].chunks(2 * F).map(|c| c.to_vec()).collect();
    (per_seq, batch.unpack(&out[1]).unwrap())
}

#[test]
fn a_sequence_gives_the_same_results_alone_and_in_any_batch() {
    let seqs = sequences(&[4, 1, 7, 3], 11);
    let r = rand_vec(4 * 2 * F, 12);
    let (out, dx) = outputs_and_input_gradients(&seqs, 7, &r);
    // The same batch with more padding.
    let (out_p, dx_p) = outputs_and_input_gradients(&seqs, 10, &r);
    for k in 0..4 {
        assert_close(
            &format!("padding: out {k}"),
            &out_p[k],
            &to64(&out[k]),
            1e-6,
        );
        assert_close(&format!("padding: dx {k}"), &dx_p[k], &to64(&dx[k]), 1e-6);
        // Alone.
        let (o1, d1) = outputs_and_input_gradients(
            &seqs[k..k + 1],
            seqs[k].len() / F,
            &r[k * 2 * F..(k + 1) * 2 * F],
        );
        assert_close(&format!("alone: out {k}"), &o1[0], &to64(&out[k]), 1e-6);
        assert_close(&format!("alone: dx {k}"), &d1[0], &to64(&dx[k]), 1e-6);
    }
}

/// f64 reference of [`model`] for one sequence (its weights read from the executor).
fn model_ref(s: &[Vec<f64>], w: &[f64], c: &[f64]) -> Vec<f64> {
    let h: Vec<Vec<f64>> = s
        .iter()
        .map(|x| {
            (0..F)
                .map(|j| (0..F).map(|i| x[i] * w[i * F + j]).sum::<f64>().tanh())
                .collect()
        })
        .collect();
    let n = h.len();
    let p: Vec<Vec<f64>> = (0..n)
        .map(|t| if t == 0 { c.to_vec() } else { h[t - 1].clone() })
        .collect();
    let hp: Vec<Vec<f64>> = (0..n)
        .map(|t| (0..F).map(|j| h[t][j] * p[t][j]).collect())
        .collect();
    let q: Vec<Vec<f64>> = (0..n)
        .map(|t| {
            if t + 1 == n {
                vec![0.25; F]
            } else {
                hp[t + 1].clone()
            }
        })
        .collect();
    let mut out: Vec<f64> = (0..F)
        .map(|j| (0..n).map(|t| q[t][j] * h[0][j]).sum::<f64>() + h[n - 1][j])
        .collect();
    out.extend((0..F).map(|j| (0..n).map(|t| p[t][j]).fold(f64::MIN, f64::max)));
    out
}

#[test]
fn sequence_gradients_match_finite_differences_through_twenty_steps() {
    let lengths = [1, 21, 3];
    let seqs = sequences(&lengths, 21);
    let r = rand_vec(3 * 2 * F, 22);
    let (out, dx) = outputs_and_input_gradients(&seqs, 21, &r);
    // The model's weights, as initialised with the same seed.
    let g = Graph::with_seed(5);
    let x = g.input_sequence("x", &[F]).unwrap();
    let _ = model(&g, x);
    let ex = Executor::new(&ctx(), &g).unwrap();
    let w = to64(&ex.parameter(g.find("w").unwrap()).unwrap());
    let c = to64(&ex.parameter(g.find("c").unwrap()).unwrap());
    for k in 0..3 {
        let s = steps_of(&seqs[k]);
        let rk = to64(&r[k * 2 * F..(k + 1) * 2 * F]);
        assert_close(&format!("model {k}"), &out[k], &model_ref(&s, &w, &c), 1e-5);
        let loss = |s: &[Vec<f64>]| {
            model_ref(s, &w, &c)
                .iter()
                .zip(&rk)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        let mut want = Vec::new();
        for t in 0..s.len() {
            for f in 0..F {
                let mut p = s.clone();
                p[t][f] += 1e-5;
                let lp = loss(&p);
                p[t][f] -= 2e-5;
                want.push((lp - loss(&p)) / 2e-5);
            }
        }
        assert_close(&format!("d/dx of sequence {k}"), &dx[k], &want, 2e-3);
    }
}

#[test]
fn wrong_feeds_and_mixing_ops_are_errors() {
    let g = Graph::new();
    let x = g.input_sequence("x", &[2]).unwrap();
    let y = g.sequence_last(x).unwrap();
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let l = g.sequence_lengths();
    let data = [0.0f32; 12]; // 2 sequences × 3 steps × 2
    let run = |ex: &mut Executor, lengths: &[f32]| {
        ex.eval(&[y], &[(x, &data[..]), (l, lengths)])
            .unwrap_err()
            .to_string()
    };
    let e = run(&mut ex, &[3.0, 4.0]);
    assert!(
        e.contains("sequence 1 has length 4") && e.contains("3 padded steps"),
        "{e}"
    );
    let e = run(&mut ex, &[2.5, 1.0]);
    assert!(e.contains("length 2.5"), "{e}");
    let e = run(&mut ex, &[0.0, 1.0]);
    assert!(e.contains("length 0"), "{e}");
    let e = ex.eval(&[y], &[(x, &data[..])]).unwrap_err().to_string();
    assert!(e.contains("sequence lengths"), "{e}");
    let e = ex
        .eval(&[y], &[(x, &data[..10]), (l, &[1.0, 1.0][..])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("'x'") && e.contains("10"), "{e}");
    // Ops that would mix steps, or the padding, say what to use instead.
    let e = g.reduce_mean(x, &[]).unwrap_err().to_string();
    assert!(
        e.contains("sequence axis") && e.contains("sequence_reduce_sum"),
        "{e}"
    );
    let e = g.softmax(x, 1).unwrap_err().to_string();
    assert!(e.contains("sequence axis"), "{e}");
    let e = g
        .reshape(x, wgrad::Shape::batched(&[6]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot reshape [batch, seq, 2]"), "{e}");
    let e = g.sequence_last(y).unwrap_err().to_string();
    assert!(
        e.contains("sequence_last") && e.contains("[batch, seq, ..]"),
        "{e}"
    );
}

/// Dense applies per step to a sequence, with its bias and activation still folded into the
/// product: `[batch, seq, F] → [batch, seq, units]`.
#[test]
fn dense_applies_per_step() {
    use wgrad::nn::{Dense, Sequential};
    let seqs = sequences(&[2, 5], 31);
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, F).unwrap();
    let g = Graph::with_seed(2);
    let x = g.input_sequence("x", &[F]).unwrap();
    let y = Sequential::new()
        .add(Dense::new(3).activation(wgrad::nn::Activation::Tanh))
        .build(&g, x)
        .unwrap();
    assert_eq!(g.shape(y).to_string(), "[batch, seq, 3]");
    let mut ex = Executor::new(&ctx(), &g).unwrap();
    let feed = batch.feed(x, g.sequence_lengths());
    let got = batch.unpack(&ex.eval(&[y], &feed).unwrap()[0]).unwrap();
    let w = to64(&ex.parameter(g.find("dense1.weight").unwrap()).unwrap());
    for (k, s) in seqs.iter().enumerate() {
        let want: Vec<f64> = steps_of(s)
            .iter()
            .flat_map(|x| {
                (0..3)
                    .map(|j| (0..F).map(|i| x[i] * w[i * 3 + j]).sum::<f64>().tanh())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_close(&format!("dense on sequence {k}"), &got[k], &want, 1e-5);
    }
    let plan = ex.plan_summary(&[y], &feed, false).unwrap();
    assert_eq!(plan.count_entry("bias_act"), 0, "{plan}");
}

/// A per-token loss trains as the mean over valid steps: the trainer's reported loss is the
/// token mean (padding excluded), and SGD on it matches SGD on the f64 token mean.
#[test]
fn trainers_average_per_token_losses_over_valid_steps() {
    let seqs = sequences(&[3, 1, 6], 41);
    let refs: Vec<&[f32]> = seqs.iter().map(|s| &s[..]).collect();
    let batch = SequenceBatch::pack(&refs, F).unwrap();
    let g = Graph::new();
    let x = g.input_sequence("x", &[F]).unwrap();
    let w = g.parameter("w", &[F], Init::Const(0.5)).unwrap();
    // Per token: (Σ_f x·w - 1)².
    let d = g
        .sub(
            g.reduce_sum(g.mul(x, w).unwrap(), &[-1]).unwrap(),
            g.scalar(1.0),
        )
        .unwrap();
    let loss = g.mul(d, d).unwrap();
    let mut tr = wgrad::Trainer::new(&ctx(), &g, loss, None, wgrad::Learner::sgd(0.1)).unwrap();
    let feed = batch.feed(x, g.sequence_lengths());
    let mut wr = vec![0.5f64; F];
    let tokens: Vec<Vec<f64>> = seqs.iter().flat_map(|s| steps_of(s)).collect();
    for step in 0..3 {
        let e: Vec<f64> = tokens
            .iter()
            .map(|t| (0..F).map(|f| t[f] * wr[f]).sum::<f64>() - 1.0)
            .collect();
        let want_loss = e.iter().map(|v| v * v).sum::<f64>() / 10.0;
        let stats = tr.train_minibatch(&feed, true).unwrap().unwrap();
        assert_close(&format!("loss {step}"), &[stats.loss], &[want_loss], 1e-5);
        for f in 0..F {
            let grad: f64 = tokens
                .iter()
                .zip(&e)
                .map(|(t, e)| 2.0 * e * t[f])
                .sum::<f64>()
                / 10.0;
            wr[f] -= 0.1 * grad;
        }
        assert_close(
            &format!("w {step}"),
            &tr.executor().parameter(w).unwrap(),
            &wr,
            1e-5,
        );
    }
}
