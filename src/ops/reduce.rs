//! Reductions over axes, broadcasting back (expand) and per-channel sums, with their
//! gradient rules.

use crate::error::shape_err;
use crate::graph::{BinaryOp, Graph, NodeId, Op, ReduceOp};
use crate::shape::{Dim, Shape};
use crate::Result;

impl Graph {
    /// Reduction over one axis, kept with size 1.
    pub fn reduce_axis(&self, op: ReduceOp, x: NodeId, axis: usize) -> Result<NodeId> {
        let s = self.check("reduce", x)?;
        if matches!(s.0.get(axis), Some(Dim::Seq(_))) {
            return shape_err(
                "reduce",
                format!("axis {axis} of {s} is the sequence axis: use sequence_reduce_sum / sequence_reduce_max (or sequence_token_mean), which skip the padding"),
            );
        }
        self.reduce_any_axis(op, x, axis)
    }

    /// [`Graph::reduce_axis`] over any axis, the sequence axis included: for gradient
    /// rules summing a broadcast operand's gradient, which is zero at padding steps.
    pub(crate) fn reduce_any_axis(&self, op: ReduceOp, x: NodeId, axis: usize) -> Result<NodeId> {
        let mut s = self.check("reduce", x)?;
        if axis >= s.rank() {
            return shape_err("reduce", format!("axis {axis} out of range for shape {s}"));
        }
        s.0[axis] = Dim::Fixed(1);
        Ok(self.push(Op::Reduce { op, x, axis }, s))
    }

    /// Reduction over `axes` (negative counts from the end; empty means all axes).
    /// With `keepdims` the reduced axes stay with size 1, otherwise they are removed.
    pub fn reduce(
        &self,
        op: ReduceOp,
        x: NodeId,
        axes: &[isize],
        keepdims: bool,
    ) -> Result<NodeId> {
        let s = self.check("reduce", x)?;
        let mut list: Vec<usize> = if axes.is_empty() {
            (0..s.rank()).collect()
        } else {
            axes.iter()
                .map(|&a| s.axis("reduce", a))
                .collect::<Result<_>>()?
        };
        list.sort_unstable();
        list.dedup();
        let mut cur = x;
        for &a in &list {
            if s.0[a] != Dim::Fixed(1) {
                cur = self.reduce_axis(op, cur, a)?;
            }
        }
        if keepdims {
            return Ok(cur);
        }
        let kept: Vec<Dim> = (0..s.rank())
            .filter(|a| !list.contains(a))
            .map(|a| s.0[a])
            .collect();
        self.reshape(cur, Shape(kept))
    }

    /// Σ over `axes` (empty: all), axes removed.
    pub fn reduce_sum(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Sum, x, axes, false)
    }

    /// Mean over `axes` (empty: all), axes removed.
    pub fn reduce_mean(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Mean, x, axes, false)
    }

    /// Max over `axes` (empty: all), axes removed. NaN propagates. Ties share the gradient:
    /// the k elements equal to a maximum each get g/k (over several axes, per axis in turn),
    /// so the gradients of a reduced row always sum to its g.
    pub fn reduce_max(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Max, x, axes, false)
    }

    /// Min over `axes` (empty: all), axes removed; NaN and ties as [`Graph::reduce_max`].
    pub fn reduce_min(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Min, x, axes, false)
    }

    /// The index of the first maximum along `axis` (negative counts from the end), as a
    /// float, with that axis removed. It has no gradient.
    pub fn argmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        let s = self.check("argmax", x)?;
        let axis = s.axis("argmax", axis)?;
        if s.0[axis] == Dim::Batch {
            return shape_err("argmax", format!("axis {axis} of {s} is the batch axis"));
        }
        let i = self.reduce_axis(ReduceOp::Argmax, x, axis)?;
        let kept: Vec<Dim> = (0..s.rank())
            .filter(|&a| a != axis)
            .map(|a| s.0[a])
            .collect();
        self.reshape(i, Shape(kept))
    }

    /// CNTK's `hardmax`: 1 at the first maximum along `axis`, 0 elsewhere; `x`'s shape. It
    /// has no gradient.
    pub fn hardmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        let s = self.check("hardmax", x)?;
        let axis = s.axis("hardmax", axis)?;
        let len = s.0[axis].resolve(0);
        let hot = self.one_hot(self.argmax(x, axis as isize)?, len)?;
        // one_hot appends the class axis: move it back to `axis`.
        let last = s.rank() - 1;
        let perm: Vec<usize> = (0..s.rank())
            .map(|a| match a.cmp(&axis) {
                std::cmp::Ordering::Less => a,
                std::cmp::Ordering::Equal => last,
                std::cmp::Ordering::Greater => a - 1,
            })
            .collect();
        self.permute(hot, &perm)
    }

    /// Broadcasts `x` to `shape`.
    pub fn expand(&self, x: NodeId, shape: Shape) -> Result<NodeId> {
        self.expand_mean(x, shape, None)
    }

    pub(crate) fn expand_mean(
        &self,
        x: NodeId,
        shape: Shape,
        mean_axis: Option<usize>,
    ) -> Result<NodeId> {
        let s = self.check("expand", x)?;
        let b = Shape::broadcast("expand", &s, &shape)?;
        if b != shape {
            return shape_err("expand", format!("cannot broadcast {s} to {shape}"));
        }
        Ok(self.push(Op::Expand { x, mean_axis }, shape))
    }

    /// Σ of `x` over every axis but `axis`: `[C]`, C the length of `axis`.
    pub fn channel_sum(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        let sx = self.check("channel_sum", x)?;
        let axis = sx.axis("channel_sum", axis)?;
        let Dim::Fixed(c) = sx.0[axis] else {
            return shape_err(
                "channel_sum",
                format!("axis {axis} of {sx} is the batch axis"),
            );
        };
        Ok(self.push(Op::ChannelSum { x, axis }, Shape::fixed(&[c])))
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_reduce(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        _wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::Reduce { op, x, axis } => {
                let xs = shape(x);
                let gx = match op {
                    ReduceOp::Sum => self.expand(g, xs)?,
                    ReduceOp::Mean => self.expand_mean(g, xs, Some(axis))?,
                    // Split evenly among the elements equal to the extremum (as JAX and
                    // TensorFlow do), so a row's gradients always sum to its g.
                    ReduceOp::Max | ReduceOp::Min => {
                        let hit = self.binary(BinaryOp::Eq, x, self.expand(out, xs.clone())?)?;
                        let ties = self.reduce_any_axis(ReduceOp::Sum, hit, axis)?;
                        self.mul(self.expand(self.div(g, ties)?, xs)?, hit)?
                    }
                    // An index is piecewise constant: no gradient.
                    ReduceOp::Argmax => return Ok(res),
                };
                res.push((x, gx));
            }
            Op::Expand { x, mean_axis } => res.push((x, self.sum_to(g, &shape(x), mean_axis)?)),
            Op::ChannelSum { x, axis } => {
                let xs = shape(x);
                let mut along: Vec<usize> = vec![1; xs.rank()];
                along[axis] = xs.0[axis].resolve(0);
                let g = self.reshape(g, Shape::fixed(&along))?;
                res.push((x, self.expand(g, xs)?));
            }
            _ => unreachable!("grad_reduce takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
