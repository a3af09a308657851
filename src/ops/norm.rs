//! Batch normalisation, composed of primitives (its gradient comes from theirs).

use crate::error::shape_err;
use crate::graph::{Graph, Init, NodeId, ReduceOp};
use crate::shape::Dim;
use crate::Result;

impl Graph {
    /// Batch normalisation over every axis but `axis` (1 for NCHW images and for
    /// `[batch, features]`): training uses the minibatch's statistics and updates the
    /// running averages `{name}.running_mean` / `.running_var` (momentum `momentum`, unbiased
    /// variance); evaluation uses the running averages. Learnable `{name}.scale` (ones) and
    /// `{name}.shift` (zeros).
    pub fn batch_norm(
        &self,
        name: &str,
        x: NodeId,
        axis: usize,
        momentum: f32,
        eps: f32,
    ) -> Result<NodeId> {
        let s = self.check("batch_norm", x)?;
        if axis >= s.rank() || s.0[axis] == Dim::Batch {
            return shape_err(
                "batch_norm",
                format!("feature axis {axis} is not a fixed axis of {s}"),
            );
        }
        let c = s.0[axis].resolve(0);
        let mut pshape = vec![1usize; s.rank()];
        pshape[axis] = c;
        let scale = self.parameter(&format!("{name}.scale"), &pshape, Init::Const(1.0))?;
        let shift = self.parameter(&format!("{name}.shift"), &pshape, Init::Zeros)?;
        let rmean = self.variable(&format!("{name}.running_mean"), &pshape, Init::Zeros, false)?;
        let rvar = self.variable(
            &format!("{name}.running_var"),
            &pshape,
            Init::Const(1.0),
            false,
        )?;
        let axes: Vec<isize> = (0..s.rank())
            .filter(|&a| a != axis)
            .map(|a| a as isize)
            .collect();
        // Training: statistics of this minibatch.
        let mean = self.reduce(ReduceOp::Mean, x, &axes, true)?;
        let centred = self.sub(x, mean)?;
        let var = self.reduce(ReduceOp::Mean, self.mul(centred, centred)?, &axes, true)?;
        let train = self.div(centred, self.sqrt(self.add(var, self.scalar(eps))?)?)?;
        // Evaluation: running statistics.
        let eval = self.div(
            self.sub(x, rmean)?,
            self.sqrt(self.add(rvar, self.scalar(eps))?)?,
        )?;
        let norm = self.mode(train, eval)?;
        // Running averages, updated at the end of each training step. The unbiased variance
        // needs the count n of reduced elements, known only per batch: var·n/(n-1), with
        // n/(n-1) computed from a ones tensor shaped like x.
        let n = self.reduce(
            ReduceOp::Sum,
            self.add(self.mul(x, self.scalar(0.0))?, self.scalar(1.0))?,
            &axes,
            true,
        )?;
        let unbiased = self.div(
            self.mul(var, n)?,
            self.maximum(self.sub(n, self.scalar(1.0))?, self.scalar(1.0))?,
        )?;
        let m = momentum;
        let new_mean = self.add(self.scale(rmean, 1.0 - m)?, self.scale(mean, m)?)?;
        let new_var = self.add(self.scale(rvar, 1.0 - m)?, self.scale(unbiased, m)?)?;
        self.assign(rmean, new_mean)?;
        self.assign(rvar, new_var)?;
        self.add(self.mul(norm, scale)?, shift)
    }
}
