//! Learners. Every learner applies the **minibatch-mean** gradient (the gradient of the mean
//! loss over the minibatch, as in PyTorch), so the learning rate does not depend on the
//! minibatch size's units. Updates run as GPU kernels at the end of each training step.

use crate::executor::UpdateRule;
use crate::kernels::Kernel;

/// Stochastic gradient descent, optionally with momentum and weight decay (L2).
///
/// With momentum μ: `v ← μ·v + g;  p ← p − lr·v` (PyTorch's form; CNTK's `momentum_sgd`
/// scales g by (1 − μ), which equals this one with lr·(1 − μ)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate per minibatch-mean gradient.
    pub lr: f32,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f32,
    /// L2 weight decay λ: the gradient becomes g + λ·p.
    pub weight_decay: f32,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }

    /// Adds momentum.
    pub fn momentum(mut self, momentum: f32) -> Sgd {
        self.momentum = momentum;
        self
    }

    /// Adds L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f32) -> Sgd {
        self.weight_decay = weight_decay;
        self
    }

    pub(crate) fn hyper(&self) -> [f32; 4] {
        [self.lr, self.momentum, self.weight_decay, 0.0]
    }

    pub(crate) fn rule(&self) -> UpdateRule {
        let (kernel, state) = if self.momentum != 0.0 {
            (Kernel::SgdMomentum, 1)
        } else {
            (Kernel::Sgd, 0)
        };
        UpdateRule {
            kernel,
            state,
            hyper: self.hyper(),
        }
    }
}
