//! Every learner against a plain-Rust f64 reference over several steps, on a least-squares
//! problem: loss = mean over rows of Σ_j (x·W − t)²_j.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::kernels::Shader;
use wgrad::{Graph, Init, Learner, OperandTextures, Schedule, Trainer};

const ROWS: usize = 6;
const IN: usize = 3;
const OUT: usize = 2;

/// The reference update of one learner: (weights, state 1, state 2, gradient, step t ≥ 1).
type Update = dyn Fn(&mut [f64], &mut [f64], &mut [f64], &[f64], i32);

/// Checks `learner` against `update` with its operands read from storage buffers (as on
/// GPUs) and from texture copies (as on CPU adapters).
fn check(name: &str, learner: Learner, clip: Option<f64>, update: &Update) {
    for textures in [OperandTextures::Never, OperandTextures::Always] {
        check_with(name, learner, clip, update, textures);
    }
}

fn check_with(
    name: &str,
    learner: Learner,
    clip: Option<f64>,
    update: &Update,
    textures: OperandTextures,
) {
    let ctx = ctx_with_textures(textures);
    let name = &format!("{name} ({textures:?} textures)");
    let g = Graph::new();
    let x = g.input("x", &[IN]).unwrap();
    let t = g.input("t", &[OUT]).unwrap();
    let w = g.parameter("w", &[IN, OUT], Init::Const(0.3)).unwrap();
    let d = g.sub(g.matmul(x, w).unwrap(), t).unwrap();
    let loss = g.reduce_sum(g.mul(d, d).unwrap(), &[-1]).unwrap();
    let mut tr = Trainer::new(&ctx, &g, loss, None, learner).unwrap();
    let xd = rand_vec(ROWS * IN, 1);
    let td: Vec<f32> = rand_vec(ROWS * OUT, 2).iter().map(|v| v * 3.0).collect();
    let mut wr = vec![0.3f64; IN * OUT];
    let (mut s1, mut s2) = (vec![0.0; IN * OUT], vec![0.0; IN * OUT]);
    for step in 1..=6 {
        tr.train_minibatch(&[(x, &xd), (t, &td)], false).unwrap();
        // Gradient of the mean loss in f64.
        let mut grad = vec![0.0; IN * OUT];
        for r in 0..ROWS {
            for j in 0..OUT {
                let e: f64 = (0..IN)
                    .map(|k| xd[r * IN + k] as f64 * wr[k * OUT + j])
                    .sum::<f64>()
                    - td[r * OUT + j] as f64;
                for k in 0..IN {
                    grad[k * OUT + j] += 2.0 * e * xd[r * IN + k] as f64 / ROWS as f64;
                }
            }
        }
        if let Some(c) = clip {
            let norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(
                step > 1 || norm > 2.0 * c,
                "the first step must clip (norm {norm})"
            );
            let f = (c / norm).min(1.0);
            grad.iter_mut().for_each(|v| *v *= f);
        }
        update(&mut wr, &mut s1, &mut s2, &grad, step);
        if step == 1 {
            let plan = tr.executor().plan_summary(&[], &[(x, &xd), (t, &td)], true);
            let plan = plan.unwrap();
            let from_textures = plan.dispatches.iter();
            let from_textures = from_textures.filter(|d| d.shader == Shader::OptimTexture);
            let want = if textures == OperandTextures::Always {
                2
            } else {
                0
            };
            assert_eq!(from_textures.count(), want, "{name}: {plan}");
        }
        let got = tr.executor().parameter(w).unwrap();
        assert_close(&format!("{name} step {step}"), &got, &wr, 2e-5);
    }
}

#[test]
fn sgd_family() {
    check("sgd", Learner::sgd(0.05), None, &|w, _, _, g, _| {
        w.iter_mut().zip(g).for_each(|(w, g)| *w -= 0.05 * g)
    });
    check(
        "sgd + l2",
        Learner::sgd(0.05).weight_decay(0.1),
        None,
        &|w, _, _, g, _| {
            w.iter_mut()
                .zip(g)
                .for_each(|(w, g)| *w -= 0.05 * (g + 0.1 * *w))
        },
    );
    check(
        "momentum",
        Learner::momentum_sgd(0.05, 0.9),
        None,
        &|w, v, _, g, _| {
            for i in 0..w.len() {
                v[i] = 0.9 * v[i] + g[i];
                w[i] -= 0.05 * v[i];
            }
        },
    );
    check(
        "nesterov",
        Learner::nesterov(0.05, 0.9),
        None,
        &|w, v, _, g, _| {
            for i in 0..w.len() {
                v[i] = 0.9 * v[i] + g[i];
                w[i] -= 0.05 * (g[i] + 0.9 * v[i]);
            }
        },
    );
}

fn adam_ref(lr: f64, decay: f64) -> impl Fn(&mut [f64], &mut [f64], &mut [f64], &[f64], i32) {
    move |w, m, v, g, t| {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        for i in 0..w.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            w[i] = w[i] * (1.0 - lr * decay) - lr * mh / (vh.sqrt() + eps);
        }
    }
}

#[test]
fn adaptive_learners() {
    check("adam", Learner::adam(0.01), None, &adam_ref(0.01, 0.0));
    check(
        "adamw",
        Learner::adamw(0.01, 0.5),
        None,
        &adam_ref(0.01, 0.5),
    );
    check("rmsprop", Learner::rmsprop(0.01), None, &|w, v, _, g, _| {
        for i in 0..w.len() {
            v[i] = 0.9 * v[i] + 0.1 * g[i] * g[i];
            w[i] -= 0.01 * g[i] / (v[i].sqrt() + 1e-8);
        }
    });
    check("adagrad", Learner::adagrad(0.1), None, &|w, v, _, g, _| {
        for i in 0..w.len() {
            v[i] += g[i] * g[i];
            w[i] -= 0.1 * g[i] / (v[i].sqrt() + 1e-10);
        }
    });
}

/// CNTK's FSAdaGrad written as CNTK (≥ 2.2, per-minibatch learning rate) computes it: on the
/// mean gradient, with the smoothed count counting samples (ROWS per step).
fn fsadagrad_ref(
    lr: f64,
    mu: f64,
    tau: f64,
) -> impl Fn(&mut [f64], &mut [f64], &mut [f64], &[f64], i32) {
    let count = std::cell::Cell::new(0.0f64);
    move |w, v, m, g, _| {
        let n = ROWS as f64;
        let beta = (-n / tau).exp();
        count.set(beta * count.get() + (1.0 - beta) * n);
        let ada_mul = count.get().sqrt();
        for i in 0..w.len() {
            v[i] = beta * v[i] + (1.0 - beta) * g[i] * g[i];
            let scaled = if v[i] != 0.0 {
                g[i] * (ada_mul / v[i].sqrt()).min(10.0)
            } else {
                g[i]
            };
            m[i] = mu * m[i] + (1.0 - mu) * scaled;
            w[i] -= lr * m[i];
        }
    }
}

#[test]
fn fsadagrad_matches_cntks_update() {
    // A short variance time constant, so that the variance's momentum matters in 6 steps.
    let fast = Learner {
        algorithm: wgrad::Algorithm::FsAdagrad {
            momentum: 0.9,
            variance_time_constant: 30.0,
        },
        ..Learner::fsadagrad(0.02, 0.9)
    };
    // The reference keeps the smoothed count: a fresh one for each run.
    for textures in [OperandTextures::Never, OperandTextures::Always] {
        let reference = fsadagrad_ref(0.02, 0.9, 30.0);
        check_with("fsadagrad", fast, None, &reference, textures);
        let reference = fsadagrad_ref(0.05, 0.0, 720_000.0);
        let default = Learner::fsadagrad(0.05, 0.0);
        check_with("fsadagrad default", default, None, &reference, textures);
    }
}

#[test]
fn gradient_clipping_by_global_norm() {
    check(
        "sgd clipped",
        Learner::sgd(0.05).clip_norm(0.5),
        Some(0.5),
        &|w, _, _, g, _| w.iter_mut().zip(g).for_each(|(w, g)| *w -= 0.05 * g),
    );
}

#[test]
fn schedules_run_on_the_device() {
    let sched = Learner::sgd(0.1).schedule(Schedule::Step {
        every: 2,
        gamma: 0.5,
    });
    check("step schedule", sched, None, &|w, _, _, g, t| {
        let lr = 0.1 * 0.5f64.powi((t - 1) / 2);
        w.iter_mut().zip(g).for_each(|(w, g)| *w -= lr * g)
    });
}

#[test]
fn schedule_formulas() {
    let l = Learner::sgd(1.0);
    let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    close(
        l.schedule(Schedule::Step {
            every: 10,
            gamma: 0.1,
        })
        .lr_at(25),
        0.01,
    );
    close(
        l.schedule(Schedule::Exponential { gamma: 0.5 }).lr_at(3),
        0.125,
    );
    let c = l.schedule(Schedule::Cosine {
        total: 100,
        min_lr: 0.1,
    });
    close(c.lr_at(0), 1.0);
    close(c.lr_at(50), 0.55);
    close(c.lr_at(100), 0.1);
    close(c.lr_at(1000), 0.1);
    let w = l.warmup(4);
    close(w.lr_at(0), 0.25);
    close(w.lr_at(3), 1.0);
    close(w.lr_at(10), 1.0);
}
