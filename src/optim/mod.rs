//! Learners. Every learner applies the **minibatch-mean** gradient (the gradient of the mean
//! loss over the minibatch, as in PyTorch), so one learning rate works for any minibatch
//! size. Updates run as GPU kernels at the end of each training step; the hyper-parameters
//! (learning rate from the schedule, Adam's bias corrections) are rewritten each step
//! without re-planning.

pub mod lbfgs;

use crate::executor::UpdateRule;
use crate::kernels::contract::Hyper;
use crate::kernels::Rule;

/// The update rule of a [`Learner`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    /// SGD, with momentum μ when non-zero (`v ← μv + g; p ← p − lr·v`, PyTorch's form;
    /// CNTK's `momentum_sgd` scales g by 1−μ, i.e. the same with lr·(1−μ)).
    Sgd {
        /// Momentum μ.
        momentum: f32,
        /// Nesterov's look-ahead: `p ← p − lr·(g + μv)`.
        nesterov: bool,
    },
    /// Adam (Kingma & Ba) with bias correction; `decoupled` weight decay makes it AdamW.
    Adam {
        /// β1.
        beta1: f32,
        /// β2.
        beta2: f32,
        /// ε.
        eps: f32,
    },
    /// RMSProp: `v ← ρv + (1−ρ)g²; p ← p − lr·g/(√v + ε)`.
    RmsProp {
        /// ρ.
        rho: f32,
        /// ε.
        eps: f32,
    },
    /// Adagrad: `v ← v + g²; p ← p − lr·g/(√v + ε)`.
    Adagrad {
        /// ε.
        eps: f32,
    },
    /// CNTK's FSAdaGrad (the learner of tutorial 106A), for minibatches of N samples:
    /// `v ← β·v + (1−β)·g²` with `β = e^(−N/τ)`; each gradient element is scaled by
    /// `min(√c / √v, 10)` (c the smoothed sample count), then unit-gain momentum
    /// `m ← μm + (1−μ)·g'; p ← p − lr·m`. g is the minibatch-mean gradient and lr applies per
    /// minibatch, as in CNTK ≥ 2.2 with `learning_parameter_schedule(lr)` (the tutorial's
    /// setting): CNTK's "compatible mode", where it divides the summed gradient by N first.
    FsAdagrad {
        /// Momentum μ per minibatch.
        momentum: f32,
        /// τ, the variance's time constant in samples (CNTK's default: 720,000).
        variance_time_constant: f32,
    },
}

/// How the learning rate changes with the minibatch count t (starting at 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` minibatches.
    Step {
        /// Period in minibatches.
        every: u64,
        /// Factor.
        gamma: f32,
    },
    /// Multiply by `gamma` every minibatch.
    Exponential {
        /// Factor per minibatch.
        gamma: f32,
    },
    /// Cosine decay from the base rate to `min_lr` over `total` minibatches.
    Cosine {
        /// Length of the decay.
        total: u64,
        /// Final rate.
        min_lr: f32,
    },
}

/// A learner: an algorithm, a learning rate with schedule and warm-up, L2 regularisation or
/// decoupled weight decay, and gradient clipping by global norm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Learner {
    /// The update rule.
    pub algorithm: Algorithm,
    /// Base learning rate.
    pub lr: f32,
    /// Schedule of the learning rate.
    pub schedule: Schedule,
    /// Linear warm-up from lr/warmup to lr over this many minibatches (0: none).
    pub warmup: u64,
    /// L2 regularisation λ: the gradient becomes g + λ·p (CNTK's `l2_regularization_weight`).
    pub l2: f32,
    /// Decoupled weight decay (AdamW): p ← p·(1 − lr·λ) before the step.
    pub decoupled_decay: f32,
    /// Clip the gradients so that their global L2 norm is at most this.
    pub clip_norm: Option<f32>,
}

/// Plain SGD with learning rate `lr` (kept for brevity: `Sgd::new(0.5)`).
pub struct Sgd;

impl Sgd {
    /// Plain SGD.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(lr: f32) -> Learner {
        Learner::sgd(lr)
    }
}

impl Learner {
    fn with(algorithm: Algorithm, lr: f32) -> Learner {
        Learner {
            algorithm,
            lr,
            schedule: Schedule::Constant,
            warmup: 0,
            l2: 0.0,
            decoupled_decay: 0.0,
            clip_norm: None,
        }
    }

    /// Plain SGD.
    pub fn sgd(lr: f32) -> Learner {
        Learner::with(
            Algorithm::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            lr,
        )
    }

    /// SGD with momentum.
    pub fn momentum_sgd(lr: f32, momentum: f32) -> Learner {
        Learner::with(
            Algorithm::Sgd {
                momentum,
                nesterov: false,
            },
            lr,
        )
    }

    /// SGD with Nesterov momentum.
    pub fn nesterov(lr: f32, momentum: f32) -> Learner {
        Learner::with(
            Algorithm::Sgd {
                momentum,
                nesterov: true,
            },
            lr,
        )
    }

    /// Adam with β = (0.9, 0.999), ε = 1e-8.
    pub fn adam(lr: f32) -> Learner {
        Learner::with(
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
        )
    }

    /// AdamW: Adam with decoupled weight decay.
    pub fn adamw(lr: f32, weight_decay: f32) -> Learner {
        Learner {
            decoupled_decay: weight_decay,
            ..Learner::adam(lr)
        }
    }

    /// RMSProp with ρ = 0.9, ε = 1e-8.
    pub fn rmsprop(lr: f32) -> Learner {
        Learner::with(
            Algorithm::RmsProp {
                rho: 0.9,
                eps: 1e-8,
            },
            lr,
        )
    }

    /// Adagrad with ε = 1e-10.
    pub fn adagrad(lr: f32) -> Learner {
        Learner::with(Algorithm::Adagrad { eps: 1e-10 }, lr)
    }

    /// CNTK's FSAdaGrad with momentum μ and CNTK's default variance time constant.
    pub fn fsadagrad(lr: f32, momentum: f32) -> Learner {
        Learner::with(
            Algorithm::FsAdagrad {
                momentum,
                variance_time_constant: 720_000.0,
            },
            lr,
        )
    }

    /// Adds momentum to SGD (no effect on other algorithms).
    pub fn momentum(mut self, m: f32) -> Learner {
        if let Algorithm::Sgd { momentum, .. } = &mut self.algorithm {
            *momentum = m;
        }
        self
    }

    /// Adds L2 regularisation λ (the gradient gains λ·p).
    pub fn weight_decay(mut self, l2: f32) -> Learner {
        self.l2 = l2;
        self
    }

    /// Clips gradients to a global L2 norm of at most `max_norm`.
    pub fn clip_norm(mut self, max_norm: f32) -> Learner {
        self.clip_norm = Some(max_norm);
        self
    }

    /// Sets the learning-rate schedule.
    pub fn schedule(mut self, schedule: Schedule) -> Learner {
        self.schedule = schedule;
        self
    }

    /// Adds a linear warm-up over `steps` minibatches.
    pub fn warmup(mut self, steps: u64) -> Learner {
        self.warmup = steps;
        self
    }

    /// The learning rate for minibatch `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f32 {
        let base = match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step { every, gamma } => self.lr * gamma.powi((t / every.max(1)) as i32),
            Schedule::Exponential { gamma } => self.lr * gamma.powf(t as f32),
            Schedule::Cosine { total, min_lr } => {
                let f = (t.min(total) as f64 / total.max(1) as f64 * std::f64::consts::PI).cos();
                min_lr + (self.lr - min_lr) * (0.5 * (1.0 + f)) as f32
            }
        };
        if self.warmup > 0 && t < self.warmup {
            base * (t + 1) as f32 / self.warmup as f32
        } else {
            base
        }
    }

    /// The uniform the update kernels read at minibatch `t` (0-based).
    pub(crate) fn hyper(&self, t: u64) -> Hyper {
        let lr = self.lr_at(t);
        let (mu, beta2, eps, nesterov) = match self.algorithm {
            Algorithm::Sgd { momentum, nesterov } => (momentum, 0.0, 0.0, nesterov),
            Algorithm::Adam { beta1, beta2, eps } => (beta1, beta2, eps, false),
            Algorithm::RmsProp { rho, eps } => (rho, 0.0, eps, false),
            Algorithm::Adagrad { eps } => (0.0, 0.0, eps, false),
            Algorithm::FsAdagrad { momentum, .. } => (momentum, 0.0, 0.0, false),
        };
        let step = (t + 1) as i32;
        let (c1, c2) = match self.algorithm {
            Algorithm::Adam { beta1, beta2, .. } => (
                1.0 / (1.0 - beta1.powi(step)),
                1.0 / (1.0 - beta2.powi(step)),
            ),
            _ => (1.0, 1.0),
        };
        Hyper {
            lr,
            mu,
            beta2,
            eps,
            wd: self.l2,
            dwd: self.decoupled_decay,
            c1,
            c2,
            nesterov: nesterov as u32,
            ..Default::default()
        }
    }

    /// The uniform at minibatch `t` of `batch` samples, advancing `smoothed_count` (the
    /// trainer's running sample count of FSAdaGrad's variance; other learners ignore both).
    pub(crate) fn hyper_at(&self, t: u64, batch: usize, smoothed_count: &mut f64) -> Hyper {
        let mut h = self.hyper(t);
        if let Algorithm::FsAdagrad {
            variance_time_constant,
            ..
        } = self.algorithm
        {
            let n = batch as f64;
            let beta = (-n / variance_time_constant as f64).exp();
            *smoothed_count = beta * *smoothed_count + (1.0 - beta) * n;
            h.beta2 = beta as f32;
            // 1 − β from f64: in f32 it would lose most digits for τ ≫ N.
            h.eps = (1.0 - beta) as f32;
            h.c1 = smoothed_count.sqrt() as f32;
            // CNTK's bound on the multiplier, applied (in its compatible mode) to the mean
            // gradient as here.
            h.c2 = 10.0;
        }
        h
    }

    pub(crate) fn rule(&self) -> UpdateRule {
        let kind = match self.algorithm {
            Algorithm::Sgd { momentum: 0.0, .. } => Rule::Sgd,
            Algorithm::Sgd { .. } => Rule::SgdMomentum,
            Algorithm::Adam { .. } => Rule::Adam,
            Algorithm::RmsProp { .. } => Rule::RmsProp,
            Algorithm::Adagrad { .. } => Rule::Adagrad,
            Algorithm::FsAdagrad { .. } => Rule::FsAdagrad,
        };
        UpdateRule {
            kind,
            hyper: self.hyper(0),
        }
    }
}
