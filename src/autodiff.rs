//! Reverse-mode automatic differentiation: [`Graph::grad`] appends the backward graph.
//!
//! Each primitive op has one rule below that turns the gradient of its output into
//! contributions to its inputs. Contributions to one node are summed, and an operand that was
//! broadcast gets its gradient summed back to its own shape ([`Graph::sum_to`]).

use std::collections::HashMap;

use crate::graph::{BinaryOp, Graph, NodeId, Op, ReduceOp, UnaryOp};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
    /// Gradients of the scalar `loss` with respect to each node of `wrt`, as new nodes.
    /// A node that `loss` does not depend on gets a zero gradient.
    pub fn grad(&self, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        let ls = self.shape(loss);
        if !ls.is_scalar() {
            return Err(Error::Invalid(format!(
                "grad: the loss must be a scalar (reduce it first, e.g. reduce_mean), got shape {ls}"
            )));
        }
        let n = loss.0 + 1;
        // Which nodes depend on a wrt node: only their gradients are needed.
        let mut depends = vec![false; n];
        {
            let nodes = self.nodes();
            for i in 0..n {
                depends[i] = wrt.contains(&NodeId(i))
                    || nodes[i].op.inputs().iter().any(|j| j.0 < n && depends[j.0]);
            }
        }
        let mut grads: HashMap<NodeId, NodeId> = HashMap::new();
        let seed = self.constant(1.0, &ls.resolve(1));
        grads.insert(loss, seed);
        for i in (0..n).rev() {
            let id = NodeId(i);
            let Some(&g) = grads.get(&id) else { continue };
            if !depends[i] {
                continue;
            }
            let op = self.nodes()[i].op.clone();
            for (input, contribution) in self.backward(id, &op, g, &depends)? {
                let total = match grads.get(&input) {
                    Some(&prev) => self.add(prev, contribution)?,
                    None => contribution,
                };
                grads.insert(input, total);
            }
        }
        wrt.iter()
            .map(|&w| match grads.get(&w) {
                Some(&g) => Ok(g),
                None => {
                    let s = self.shape(w);
                    if s.has_batch() {
                        Err(Error::Invalid(format!(
                            "grad: the loss does not depend on node {} (shape {s})",
                            w.0
                        )))
                    } else {
                        Ok(self.constant(0.0, &s.resolve(1)))
                    }
                }
            })
            .collect()
    }

    /// Sums `g` over the axes along which a value of shape `target` was broadcast, then
    /// reshapes to `target`. With `mean_axis`, that axis is averaged instead of summed.
    pub(crate) fn sum_to(
        &self,
        g: NodeId,
        target: &Shape,
        mean_axis: Option<usize>,
    ) -> Result<NodeId> {
        let gs = self.shape(g);
        let (r, tr) = (gs.rank(), target.rank());
        let mut cur = g;
        for i in 0..r {
            let td = if i + tr >= r {
                target.0[i + tr - r]
            } else {
                Dim::Fixed(1)
            };
            if gs.0[i] != td || mean_axis == Some(i) {
                let op = if mean_axis == Some(i) {
                    ReduceOp::Mean
                } else {
                    ReduceOp::Sum
                };
                cur = self.reduce_axis(op, cur, i)?;
            }
        }
        self.reshape(cur, target.clone())
    }

    /// The vector-Jacobian product of one node: (input, gradient contribution) pairs.
    fn backward(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        depends: &[bool],
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let wants = |x: NodeId| depends[x.0];
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::ClassError { .. } => {}
            Op::Unary { op, x } => {
                let gx = match op {
                    UnaryOp::Neg => Some(self.neg(g)?),
                    UnaryOp::Scale(s) => Some(self.scale(g, s)?),
                    UnaryOp::Exp => Some(self.mul(g, out)?),
                    UnaryOp::Log => Some(self.div(g, x)?),
                    UnaryOp::Sqrt => Some(self.div(g, self.scale(out, 2.0)?)?),
                    UnaryOp::Abs => Some(self.mul(g, self.sign(x)?)?),
                    UnaryOp::Sign => None,
                    UnaryOp::Sigmoid => Some(self.binary(BinaryOp::SigmoidGrad, out, g)?),
                    UnaryOp::Tanh => Some(self.binary(BinaryOp::TanhGrad, out, g)?),
                    UnaryOp::Relu => Some(self.binary(BinaryOp::ReluGrad, x, g)?),
                    UnaryOp::Softplus => Some(self.mul(g, self.sigmoid(x)?)?),
                };
                if let Some(gx) = gx {
                    res.push((x, gx));
                }
            }
            Op::Binary { op, a, b } => {
                let (ga, gb) = match op {
                    BinaryOp::Add => (Some(g), Some(g)),
                    BinaryOp::Sub => (Some(g), Some(self.neg(g)?)),
                    BinaryOp::Mul => (
                        wants(a).then(|| self.mul(g, b)).transpose()?,
                        wants(b).then(|| self.mul(g, a)).transpose()?,
                    ),
                    BinaryOp::Div => (
                        wants(a).then(|| self.div(g, b)).transpose()?,
                        if wants(b) {
                            Some(self.neg(self.div(self.mul(g, out)?, b)?)?)
                        } else {
                            None
                        },
                    ),
                    BinaryOp::Max | BinaryOp::Min => {
                        // Ties send the gradient to a.
                        let (to_a, to_b) = if op == BinaryOp::Max {
                            (BinaryOp::Ge, BinaryOp::Lt)
                        } else {
                            (BinaryOp::Le, BinaryOp::Gt)
                        };
                        (
                            Some(self.mul(g, self.binary(to_a, a, b)?)?),
                            Some(self.mul(g, self.binary(to_b, a, b)?)?),
                        )
                    }
                    BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Eq => {
                        (None, None)
                    }
                    BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad => {
                        return Err(Error::Invalid(format!(
                            "grad: second derivatives through {op:?} are not supported"
                        )))
                    }
                };
                for (x, gx) in [(a, ga), (b, gb)] {
                    if let (true, Some(gx)) = (wants(x), gx) {
                        res.push((x, self.sum_to(gx, &shape(x), None)?));
                    }
                }
            }
            Op::Matmul { a, b, ta, tb } => {
                // C = op(A)·op(B):  d op(A) = G·op(B)ᵀ,  d op(B) = op(A)ᵀ·G.
                // A matrix shared across a batch gets Σ_z of the per-item gradients, as one
                // product that accumulates over the batch.
                let (ra, rb) = (shape(a).rank(), shape(b).rank());
                if wants(a) {
                    let ga = match (ra == 2 && rb == 3, ta) {
                        (true, false) => self.matmul_sum_batch_t(g, b, false, !tb)?,
                        (true, true) => self.matmul_sum_batch_t(b, g, tb, true)?,
                        (false, true) => self.matmul_t(b, g, tb, true)?,
                        (false, false) => self.matmul_t(g, b, false, !tb)?,
                    };
                    res.push((a, self.sum_to(ga, &shape(a), None)?));
                }
                if wants(b) {
                    let gb = match (rb == 2 && ra == 3, tb) {
                        (true, false) => self.matmul_sum_batch_t(a, g, !ta, false)?,
                        (true, true) => self.matmul_sum_batch_t(g, a, true, ta)?,
                        (false, true) => self.matmul_t(g, a, true, ta)?,
                        (false, false) => self.matmul_t(a, g, !ta, false)?,
                    };
                    res.push((b, self.sum_to(gb, &shape(b), None)?));
                }
            }
            Op::MatmulSumBatch { .. } => {
                return Err(Error::Invalid(
                    "grad: second derivatives through a shared matrix's gradient are not supported"
                        .into(),
                ))
            }
            Op::Reduce { op, x, axis } => {
                let xs = shape(x);
                let gx = match op {
                    ReduceOp::Sum => self.expand(g, xs)?,
                    ReduceOp::Mean => self.expand_mean(g, xs, Some(axis))?,
                    ReduceOp::Max => {
                        let hit = self.binary(BinaryOp::Eq, x, self.expand(out, xs.clone())?)?;
                        self.mul(self.expand(g, xs)?, hit)?
                    }
                };
                res.push((x, gx));
            }
            Op::Expand { x, mean_axis } => res.push((x, self.sum_to(g, &shape(x), mean_axis)?)),
            Op::Reshape { x } => res.push((x, self.reshape(g, shape(x))?)),
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
            Op::Im2Col { x, win } => res.push((x, self.col2im(g, win))),
            Op::Col2Im { x, win } => res.push((x, self.im2col_win(g, win))),
            Op::Pool { x, win, max } => res.push((x, self.pool_grad(x, g, win, max))),
            Op::Concat { a, b, axis } => {
                let la = shape(a).0[axis].resolve(0);
                let lb = shape(b).0[axis].resolve(0);
                if wants(a) {
                    res.push((a, self.slice(g, axis as isize, 0, la)?));
                }
                if wants(b) {
                    res.push((b, self.slice(g, axis as isize, la, la + lb)?));
                }
            }
            Op::Slice { x, axis, begin } => res.push((x, self.pad_to(g, axis, begin, shape(x)))),
            Op::Pad { x, axis, begin } => {
                let len = shape(x).0[axis].resolve(0);
                res.push((x, self.slice(g, axis as isize, begin, begin + len)?));
            }
            // The same mask (same seed, same step) applied to the gradient.
            Op::Dropout { x, p, seed } => res.push((x, self.dropout_mask(g, p, seed))),
            // Gradients are only taken in training steps.
            Op::Mode { train, .. } => res.push((train, g)),
            Op::OneHot { .. } => {}
            Op::BiasAct { x, b, axis, act } => {
                let gz = match act {
                    None => g,
                    Some(UnaryOp::Relu) => self.binary(BinaryOp::ReluGrad, out, g)?,
                    Some(UnaryOp::Sigmoid) => self.binary(BinaryOp::SigmoidGrad, out, g)?,
                    Some(_) => self.binary(BinaryOp::TanhGrad, out, g)?,
                };
                if wants(b) {
                    res.push((b, self.channel_sum(gz, axis as isize)?));
                }
                res.push((x, gz));
            }
            Op::ChannelSum { x, axis } => {
                let xs = shape(x);
                let mut along: Vec<usize> = vec![1; xs.rank()];
                along[axis] = xs.0[axis].resolve(0);
                let g = self.reshape(g, Shape::fixed(&along))?;
                res.push((x, self.expand(g, xs)?));
            }
            Op::Permute { x, ref perm } => {
                let mut inverse = vec![0; perm.len()];
                for (k, &a) in perm.iter().enumerate() {
                    inverse[a] = k;
                }
                res.push((x, self.permute(g, &inverse)?));
            }
            Op::CrossEntropyGrad { .. } | Op::PoolGrad { .. } => {
                return Err(Error::Invalid(format!(
                    "grad: second derivatives through {} are not supported",
                    if matches!(op, Op::PoolGrad { .. }) {
                        "pooling"
                    } else {
                        "cross_entropy_with_softmax"
                    }
                )))
            }
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_requires_scalar_loss() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let e = g.grad(x, &[x]).unwrap_err().to_string();
        assert!(e.contains("scalar") && e.contains("[batch, 3]"), "{e}");
    }

    #[test]
    fn unused_parameter_gets_zero_gradient() {
        let g = Graph::new();
        let w = g.parameter("w", &[2], crate::Init::Zeros).unwrap();
        let v = g.parameter("v", &[3], crate::Init::Zeros).unwrap();
        let l = g.reduce_sum(w, &[]).unwrap();
        let gs = g.grad(l, &[w, v]).unwrap();
        assert_eq!(g.shape(gs[1]), Shape::fixed(&[3]));
        assert!(matches!(g.nodes()[gs[1].0].op, Op::Const { value } if value == 0.0));
    }
}
