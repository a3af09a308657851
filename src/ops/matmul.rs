//! Matrix products (optionally batched, with transposes) and the batch-summed product
//! that a shared matrix's gradient needs, with their gradient rules.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
    /// Matrix product `a · b` (see [`Graph::matmul_t`]).
    pub fn matmul(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.matmul_t(a, b, false, false)
    }

    /// Matrix product `op(a) · op(b)` where `op` transposes the last two axes when asked.
    /// Operands have rank 2 or 3; a rank-3 operand is a batch of matrices, and a rank-2
    /// operand is shared by every matrix of the other's batch.
    pub fn matmul_t(&self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> Result<NodeId> {
        let sa = self.check("matmul", a)?;
        let sb = self.check("matmul", b)?;
        let s = matmul_shape(&sa, &sb, ta, tb)?;
        Ok(self.push(Op::Matmul { a, b, ta, tb }, s))
    }

    /// `Σ_z p[z]ᵀ · q[z]` for `p: [batch, r, m]`, `q: [batch, r, n]`: `[m, n]`.
    pub fn matmul_sum_batch(&self, p: NodeId, q: NodeId) -> Result<NodeId> {
        self.matmul_sum_batch_t(p, q, true, false)
    }

    /// `Σ_z op(p[z]) · op(q[z])` over the batch axis of two rank-3 operands, where `op`
    /// transposes when `tp`/`tq` is set: `[m, n]`, in one dispatch.
    pub fn matmul_sum_batch_t(&self, p: NodeId, q: NodeId, tp: bool, tq: bool) -> Result<NodeId> {
        let (sp, sq) = (self.check("matmul", p)?, self.check("matmul", q)?);
        if sp.rank() != 3 || sq.rank() != 3 || sp.0[0] != sq.0[0] {
            return shape_err(
                "matmul",
                format!("Σ_z p[z]·q[z] needs [b, ·, ·] and [b, ·, ·], got {sp} and {sq}"),
            );
        }
        let item = |s: &Shape| Shape(s.0[1..].to_vec());
        let out = matmul_shape(&item(&sp), &item(&sq), tp, tq)?;
        Ok(self.push(Op::MatmulSumBatch { p, q, tp, tq }, out))
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_matmul(
        &self,
        _out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
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
            _ => unreachable!("grad_matmul takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}

/// Output shape of `op(a) · op(b)`.
fn matmul_shape(sa: &Shape, sb: &Shape, ta: bool, tb: bool) -> Result<Shape> {
    let op = "matmul";
    for (s, name) in [(sa, "left"), (sb, "right")] {
        if !(2..=3).contains(&s.rank()) {
            return shape_err(
                op,
                format!("{name} operand must have rank 2 or 3, got {s} (with {sa} · {sb})"),
            );
        }
    }
    let last2 = |s: &Shape, t: bool| {
        let r = s.rank();
        let (x, y) = (s.0[r - 2], s.0[r - 1]);
        if t {
            (y, x)
        } else {
            (x, y)
        }
    };
    let (m, ka) = last2(sa, ta);
    let (kb, n) = last2(sb, tb);
    if ka != kb {
        return shape_err(
            op,
            format!(
                "inner dimensions differ: {sa}{} · {sb}{}",
                if ta { "ᵀ" } else { "" },
                if tb { "ᵀ" } else { "" }
            ),
        );
    }
    let batch = match (sa.rank(), sb.rank()) {
        (3, 3) if sa.0[0] != sb.0[0] => {
            return shape_err(op, format!("batch sizes differ: {sa} · {sb}"));
        }
        (3, _) => Some(sa.0[0]),
        (_, 3) => Some(sb.0[0]),
        _ => None,
    };
    let mut out: Vec<Dim> = batch.into_iter().collect();
    out.extend([m, n]);
    Ok(Shape(out))
}
