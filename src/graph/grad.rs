//! Reverse-mode automatic differentiation: [`Graph::grad`] appends the backward graph.
//!
//! Each op family keeps its rules beside its builders in `ops/` (`grad_<family>`); a rule
//! turns the gradient of a node's output into contributions to its inputs. Contributions to one node are summed, and an operand that was
//! broadcast gets its gradient summed back to its own shape ([`Graph::sum_to`]).

use std::collections::HashMap;

use crate::graph::{Graph, NodeId, Op, ReduceOp};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
    /// Gradients of the scalar `loss` with respect to each node of `wrt`, as new nodes.
    /// A node that `loss` does not depend on gets a zero gradient.
    pub fn grad(&self, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        let ls = self.check("grad", loss)?;
        for &w in wrt {
            self.check("grad", w)?;
        }
        if !ls.is_scalar() {
            return Err(Error::Invalid(format!(
                "grad: the loss must be a scalar (reduce it first, e.g. reduce_mean), got shape {ls}"
            )));
        }
        let seed = self.constant(1.0, &ls.resolve(1));
        let grads = self.propagate(&[(loss, seed)], wrt, false)?;
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

    /// The vector–Jacobian product of `seeds` (node, gradient of that node) with respect to
    /// each node of `wrt`, which are leaves here: nothing propagates through them. `None`
    /// where no seed depends on the node.
    pub(crate) fn vjp(
        &self,
        seeds: &[(NodeId, NodeId)],
        wrt: &[NodeId],
    ) -> Result<Vec<Option<NodeId>>> {
        let grads = self.propagate(seeds, wrt, true)?;
        Ok(wrt.iter().map(|w| grads.get(w).copied()).collect())
    }

    /// Reverse-mode propagation from `seeds` down to the first node: each node's gradient,
    /// for the nodes that depend on a node of `wrt` (which are leaves when `leaves`).
    fn propagate(
        &self,
        seeds: &[(NodeId, NodeId)],
        wrt: &[NodeId],
        leaves: bool,
    ) -> Result<HashMap<NodeId, NodeId>> {
        let n = seeds.iter().map(|s| s.0 .0 + 1).max().unwrap_or(0);
        let wrt_set: std::collections::HashSet<usize> = wrt.iter().map(|w| w.0).collect();
        // Which nodes depend on a wrt node: only their gradients are needed.
        let mut depends = vec![false; n];
        {
            let nodes = self.nodes();
            for i in 0..n {
                depends[i] = wrt_set.contains(&i)
                    || nodes[i].op.inputs().iter().any(|j| j.0 < n && depends[j.0]);
            }
        }
        let mut grads: HashMap<NodeId, NodeId> = HashMap::new();
        for &(node, seed) in seeds {
            let total = match grads.get(&node) {
                Some(&prev) => self.add(prev, seed)?,
                None => seed,
            };
            grads.insert(node, total);
        }
        for i in (0..n).rev() {
            let id = NodeId::at(i);
            let Some(&g) = grads.get(&id) else { continue };
            if !depends[i] || (leaves && wrt_set.contains(&i)) {
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
        Ok(grads)
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
                cur = self.reduce_any_axis(op, cur, i)?;
            }
        }
        self.reshape(cur, target.clone())
    }

    /// The vector-Jacobian product of one node: (input, gradient contribution) pairs, from
    /// the rule of the node's op family (in `ops/`).
    fn backward(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        depends: &[bool],
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let wants = |x: NodeId| depends[x.0];
        match op {
            Op::Input { .. } | Op::Param { .. } | Op::Const { .. } => Ok(Vec::new()),
            Op::StepValue | Op::Scan(_) | Op::ScanFinal { .. } => {
                self.grad_scan(out, op, g, &wants)
            }
            Op::Unary { .. } | Op::Binary { .. } => self.grad_elementwise(out, op, g, &wants),
            Op::Matmul { .. } | Op::MatmulSumBatch { .. } => self.grad_matmul(out, op, g, &wants),
            Op::Reduce { .. } | Op::Expand { .. } | Op::ChannelSum { .. } => {
                self.grad_reduce(out, op, g, &wants)
            }
            Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Concat { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::OneHot { .. }
            | Op::GatherRows { .. }
            | Op::ScatterRows { .. } => self.grad_movement(out, op, g, &wants),
            Op::Softmax { .. }
            | Op::CrossEntropy { .. }
            | Op::CrossEntropyGrad { .. }
            | Op::ClassError { .. } => self.grad_loss(out, op, g, &wants),
            Op::Im2Col { .. } | Op::Col2Im { .. } | Op::BiasAct { .. } => {
                self.grad_conv(out, op, g, &wants)
            }
            Op::Pool { .. } | Op::PoolGrad { .. } => self.grad_pool(out, op, g, &wants),
            Op::Dropout { .. } | Op::Mode { .. } => self.grad_random(out, op, g, &wants),
            Op::SeqPick { .. }
            | Op::SeqPlace { .. }
            | Op::SeqReduce { .. }
            | Op::SeqBroadcast { .. }
            | Op::SeqShift { .. }
            | Op::SeqMask { .. } => self.grad_sequence(out, op, g, &wants),
            Op::Attention { .. } => self.grad_attention(out, op, g, &wants),
            Op::SeqWhere { .. } | Op::SeqGather { .. } | Op::SeqScatter { .. } => {
                self.grad_select(op, g)
            }
            Op::LstmScan { .. }
            | Op::LstmScanGrad { .. }
            | Op::GruScan { .. }
            | Op::GruScanGrad { .. }
            | Op::RnnScan { .. }
            | Op::RnnScanGrad { .. } => self.grad_recurrence(out, op, g, &wants),
        }
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
