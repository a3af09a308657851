//! Sequence ops that select steps (CNTK's `sequence.where`, `gather` and `slice`), with their
//! gradient rules. Their results live on a derived sequence axis: its lengths are computed
//! on the device (how many steps each sequence keeps, possibly none) and its padded steps
//! are those of the axis it selects from.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::Result;

impl Graph {
    /// The steps where `cond: [batch, seq]` is non-zero, as their indices (0, 1, ..) in
    /// order: `[batch, seq']` on a new derived axis whose lengths are the counts. Like
    /// CNTK's `sequence.where` for a 0/1 condition; it has no gradient.
    pub fn sequence_where(&self, cond: NodeId) -> Result<NodeId> {
        let op = "sequence_where";
        let (s, lengths) = self.sequence_operand(op, cond)?;
        if s.rank() != 2 {
            return shape_err(
                op,
                format!("needs one value per step [batch, seq], got {s}"),
            );
        }
        let k = s.seq_axis().expect("a sequence operand has an axis");
        let counts = Op::SeqWhere {
            cond,
            lengths,
            count: true,
        };
        let counts = self.push(counts, Shape::batched(&[]));
        let derived = self.derived_axis(op, counts, k)?;
        let indices = Op::SeqWhere {
            cond,
            lengths,
            count: false,
        };
        Ok(self.push(indices, Shape(vec![Dim::Batch, Dim::Seq(derived)])))
    }

    /// The steps of `x: [batch, seq, ..]` where `cond: [batch, seq]` (same axis) is
    /// non-zero, in order, on a new derived axis: CNTK's `sequence.gather`.
    pub fn sequence_gather(&self, x: NodeId, cond: NodeId) -> Result<NodeId> {
        let (sx, _) = self.sequence_operand("sequence_gather", x)?;
        let (sc, _) = self.sequence_operand("sequence_gather", cond)?;
        if sx.seq_axis() != sc.seq_axis() {
            return shape_err(
                "sequence_gather",
                format!("the condition {sc} is not on the axis of {sx}"),
            );
        }
        let idx = self.sequence_where(cond)?;
        self.gather_steps(x, idx)
    }

    /// The steps `begin..end` of each sequence of `x: [batch, seq, ..]`, on a new derived
    /// axis. As CNTK's `sequence.slice`: negative bounds count from the sequence's end and
    /// `end == 0` means its end; a sequence shorter than the range keeps what it has (maybe
    /// no step).
    pub fn sequence_slice(&self, x: NodeId, begin: i32, end: i32) -> Result<NodeId> {
        let (s, lengths) = self.sequence_operand("sequence_slice", x)?;
        let k = s.seq_axis().expect("a sequence operand has an axis");
        let range = Op::SeqMask {
            lengths,
            begin,
            end,
        };
        let cond = self.push(range, Shape(vec![Dim::Batch, Dim::Seq(k)]));
        self.sequence_gather(x, cond)
    }

    /// `x`'s steps at the indices `idx: [batch, seq']` (from [`Graph::sequence_where`]).
    fn gather_steps(&self, x: NodeId, idx: NodeId) -> Result<NodeId> {
        let s = self.shape(x);
        let si = self.shape(idx);
        let mut out = s.0.clone();
        out[1] = si.0[1];
        let Some(k) = si.seq_axis() else {
            return shape_err(
                "sequence_gather",
                format!("indices {si} are not a sequence"),
            );
        };
        let lengths = self.lengths_of_axis(k);
        Ok(self.push(Op::SeqGather { x, idx, lengths }, Shape(out)))
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`.
    pub(crate) fn grad_select(&self, op: &Op, g: NodeId) -> Result<Vec<(NodeId, NodeId)>> {
        Ok(match *op {
            Op::SeqGather { x, idx, lengths } => {
                let spread = self.push(Op::SeqScatter { g, idx, lengths }, self.shape(x));
                vec![(x, spread)]
            }
            Op::SeqScatter { g: v, idx, lengths } => {
                let back = self.push(Op::SeqGather { x: g, idx, lengths }, self.shape(v));
                vec![(v, back)]
            }
            // Indices and counts: no gradient.
            Op::SeqWhere { .. } => Vec::new(),
            _ => unreachable!("grad_select takes its own ops, not {op:?}"),
        })
    }
}
