//! Softmax, the losses and the classification metric, with their gradient rules.
//! Cross-entropy with softmax is one fused op whose gradient is one fused op too.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op, ReduceOp};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
    /// Softmax along `axis` (negative counts from the end).
    pub fn softmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        self.softmax_op(x, axis, false)
    }

    /// Log-softmax along `axis`, computed stably.
    pub fn log_softmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        self.softmax_op(x, axis, true)
    }

    fn softmax_op(&self, x: NodeId, axis: isize, log: bool) -> Result<NodeId> {
        let s = self.check("softmax", x)?;
        let axis = s.axis("softmax", axis)?;
        if matches!(s.0[axis], Dim::Seq(_)) {
            return shape_err(
                "softmax",
                format!("axis {axis} of {s} is the sequence axis, which the sequence ops mix"),
            );
        }
        Ok(self.push(Op::Softmax { x, axis, log }, s))
    }

    fn row_op(&self, op: &'static str, z: NodeId, t: NodeId) -> Result<Shape> {
        let sz = self.check(op, z)?;
        let st = self.check(op, t)?;
        if sz != st {
            return shape_err(
                op,
                format!("scores {sz} and targets {st} must have the same shape"),
            );
        }
        if sz.rank() == 0 {
            return shape_err(op, "scores need a class axis, got a scalar".to_string());
        }
        Ok(Shape(sz.0[..sz.rank() - 1].to_vec()))
    }

    /// CNTK's `cross_entropy_with_softmax`: per row (last axis = classes),
    /// `-Σ t · log softmax(z)`, fused and numerically stable. Shape: z's without the last axis.
    pub fn cross_entropy_with_softmax(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let s = self.row_op("cross_entropy_with_softmax", z, t)?;
        Ok(self.push(Op::CrossEntropy { z, t }, s))
    }

    /// CNTK's `classification_error`: per row, 1 when argmax z differs from argmax t.
    pub fn classification_error(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let s = self.row_op("classification_error", z, t)?;
        Ok(self.push(Op::ClassError { z, t }, s))
    }

    pub(crate) fn cross_entropy_grad(&self, z: NodeId, t: NodeId, g: NodeId) -> NodeId {
        // The gradient of a sum or mean over the rows reaches here as one value broadcast to
        // every row; the kernel reads that value directly (one dispatch less per step).
        let op = self.nodes()[g.0].op.clone();
        let folded = match op {
            Op::Expand { x, mean_axis } if self.shape(g).rank() == 1 => {
                let one = self.shape(x).resolve(1).iter().product::<usize>() == 1;
                one.then_some((x, mean_axis.is_some()))
            }
            _ => None,
        };
        let (g, scalar_g, mean) = match folded {
            Some((x, mean)) => (x, true, mean),
            None => (g, false, false),
        };
        let s = self.shape(z);
        let op = Op::CrossEntropyGrad {
            z,
            t,
            g,
            scalar_g,
            mean,
        };
        self.push(op, s)
    }

    /// Binary cross-entropy on logits, per element: `softplus(z) − z·t`, which equals
    /// `−t·ln σ(z) − (1−t)·ln(1−σ(z))` without overflow for any z.
    pub fn binary_cross_entropy_with_logits(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let (sz, st) = (
            self.check("binary_cross_entropy", z)?,
            self.check("binary_cross_entropy", t)?,
        );
        if sz != st {
            return shape_err(
                "binary_cross_entropy",
                format!("logits {sz} and targets {st} differ"),
            );
        }
        self.sub(self.softplus(z)?, self.mul(z, t)?)
    }

    /// CNTK's `squared_error`: per row, Σ over the last axis of (z − t)².
    pub fn squared_error(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let (sz, st) = (
            self.check("squared_error", z)?,
            self.check("squared_error", t)?,
        );
        if sz != st {
            return shape_err(
                "squared_error",
                format!("predictions {sz} and targets {st} differ"),
            );
        }
        let d = self.sub(z, t)?;
        self.reduce_sum(self.mul(d, d)?, &[-1])
    }

    /// Softmax cross-entropy against class indices `[..]` (floats holding 0..classes)
    /// instead of one-hot rows.
    pub fn cross_entropy_with_softmax_indices(&self, z: NodeId, indices: NodeId) -> Result<NodeId> {
        let sz = self.check("cross_entropy_with_softmax", z)?;
        let classes = match sz.0.last() {
            Some(Dim::Fixed(c)) => *c,
            _ => {
                return shape_err(
                    "cross_entropy_with_softmax",
                    format!("scores {sz} need a fixed class axis"),
                )
            }
        };
        let t = self.one_hot(indices, classes)?;
        self.cross_entropy_with_softmax(z, t)
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_loss(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::Softmax { x, axis, log } => {
                let gx = if log {
                    // d/dx = g - softmax(x) · Σ g
                    let s = self.reduce_axis(ReduceOp::Sum, g, axis)?;
                    self.sub(g, self.mul(self.exp(out)?, s)?)?
                } else {
                    // d/dx = y · (g - Σ g·y)
                    let s = self.reduce_axis(ReduceOp::Sum, self.mul(g, out)?, axis)?;
                    self.mul(out, self.sub(g, s)?)?
                };
                res.push((x, gx));
            }
            Op::CrossEntropy { z, t } => {
                if wants(z) {
                    res.push((z, self.cross_entropy_grad(z, t, g)));
                }
                if wants(t) {
                    // d/dt = -g · log softmax(z)
                    let mut s = shape(g);
                    s.0.push(Dim::Fixed(1));
                    let g1 = self.reshape(g, s)?;
                    let ls = self.log_softmax(z, -1)?;
                    res.push((t, self.neg(self.mul(g1, ls)?)?));
                }
            }
            Op::ClassError { .. } => {}
            Op::CrossEntropyGrad { .. } => {
                return Err(Error::Invalid(
                    "grad: second derivatives through cross_entropy_with_softmax are not supported"
                        .into(),
                ))
            }
            _ => unreachable!("grad_loss takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
