//! Sequence ops: the ops that mix the steps of a sequence (`[batch, seq, ..]` tensors, padded
//! to the longest sequence of the minibatch), with their gradient rules. Every other op
//! works per step. Each sequence op reads the graph's sequence lengths, so a sequence's
//! results never depend on its padding or on the other sequences; at padding steps the
//! outputs are zero.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::Result;

impl Graph {
    /// Checks that `x` is a sequence tensor and returns its shape and its axis's lengths.
    pub(crate) fn sequence_operand(&self, op: &'static str, x: NodeId) -> Result<(Shape, NodeId)> {
        let s = self.check(op, x)?;
        let Some(k) = s.seq_axis() else {
            return shape_err(
                op,
                format!("needs a sequence tensor [batch, seq, ..], got {s}"),
            );
        };
        Ok((s, self.lengths_of_axis(k)))
    }

    /// The per-step shape `[batch, ..]` of a sequence shape.
    pub(crate) fn step_shape(s: &Shape) -> Shape {
        let mut d = s.0.clone();
        d.remove(1);
        Shape(d)
    }

    /// The sequence shape `[batch, seq k, ..]` of a per-sequence shape `[batch, ..]`.
    pub(crate) fn sequence_shape(op: &'static str, s: &Shape, k: u8) -> Result<Shape> {
        if s.0.first() != Some(&Dim::Batch) || s.has_seq() {
            return shape_err(
                op,
                format!("needs a per-sequence value [batch, ..], got {s}"),
            );
        }
        let mut d = s.0.clone();
        d.insert(1, Dim::Seq(k));
        Ok(Shape(d))
    }

    /// Each sequence's last valid step: `[batch, seq, ..] → [batch, ..]`.
    pub fn sequence_last(&self, x: NodeId) -> Result<NodeId> {
        self.sequence_pick("sequence_last", x, true)
    }

    /// Each sequence's first step: `[batch, seq, ..] → [batch, ..]`.
    pub fn sequence_first(&self, x: NodeId) -> Result<NodeId> {
        self.sequence_pick("sequence_first", x, false)
    }

    fn sequence_pick(&self, op: &'static str, x: NodeId, last: bool) -> Result<NodeId> {
        let (s, lengths) = self.sequence_operand(op, x)?;
        Ok(self.push(Op::SeqPick { x, lengths, last }, Graph::step_shape(&s)))
    }

    /// Σ over each sequence's steps: `[batch, seq, ..] → [batch, ..]`.
    pub fn sequence_reduce_sum(&self, x: NodeId) -> Result<NodeId> {
        let (s, lengths) = self.sequence_operand("sequence_reduce_sum", x)?;
        let op = Op::SeqReduce {
            x,
            lengths,
            max: false,
        };
        Ok(self.push(op, Graph::step_shape(&s)))
    }

    /// Max over each sequence's steps: `[batch, seq, ..] → [batch, ..]`.
    pub fn sequence_reduce_max(&self, x: NodeId) -> Result<NodeId> {
        let (s, lengths) = self.sequence_operand("sequence_reduce_max", x)?;
        let op = Op::SeqReduce {
            x,
            lengths,
            max: true,
        };
        Ok(self.push(op, Graph::step_shape(&s)))
    }

    /// A per-sequence value `v: [batch, ..]` at every step of its sequence on the first
    /// sequence axis, `[batch, seq, ..]` (zeros at padding).
    pub fn sequence_broadcast(&self, v: NodeId) -> Result<NodeId> {
        self.broadcast_on(v, self.first_sequence_axis().index())
    }

    /// CNTK's `sequence.broadcast_as`: `v: [batch, ..]` at every step of the sequences of
    /// `like`'s axis, `[batch, seq, ..]` (zeros at padding).
    pub fn sequence_broadcast_as(&self, v: NodeId, like: NodeId) -> Result<NodeId> {
        let s = self.check("sequence_broadcast_as", like)?;
        let Some(k) = s.seq_axis() else {
            return shape_err(
                "sequence_broadcast_as",
                format!("needs a sequence tensor to broadcast like, got {s}"),
            );
        };
        self.broadcast_on(v, k)
    }

    fn broadcast_on(&self, v: NodeId, k: u8) -> Result<NodeId> {
        let s = self.check("sequence_broadcast", v)?;
        let out = Graph::sequence_shape("sequence_broadcast", &s, k)?;
        let lengths = self.lengths_of_axis(k);
        Ok(self.push(Op::SeqBroadcast { v, lengths }, out))
    }

    /// CNTK's `past_value`: at each step the value of the step before, `init` at the first
    /// step. `init` broadcasts to a step's shape `[batch, ..]` (a scalar, a `[..]` state, or
    /// one state per sequence).
    pub fn past_value(&self, x: NodeId, init: NodeId) -> Result<NodeId> {
        self.sequence_shift("past_value", x, init, false)
    }

    /// CNTK's `future_value`: at each step the value of the step after, `init` at the last
    /// valid step.
    pub fn future_value(&self, x: NodeId, init: NodeId) -> Result<NodeId> {
        self.sequence_shift("future_value", x, init, true)
    }

    fn sequence_shift(
        &self,
        op: &'static str,
        x: NodeId,
        init: NodeId,
        future: bool,
    ) -> Result<NodeId> {
        let (s, lengths) = self.sequence_operand(op, x)?;
        let step = Graph::step_shape(&s);
        let si = self.check(op, init)?;
        let b = Shape::broadcast(op, &si, &step)?;
        if b != step {
            return shape_err(op, format!("initial state {si} does not fit a step {step}"));
        }
        let init = if si == step {
            init
        } else {
            self.expand(init, step)?
        };
        let op = Op::SeqShift {
            x,
            init,
            lengths,
            future,
        };
        Ok(self.push(op, s))
    }

    /// 1 at every valid step of every sequence of the first axis, 0 at padding: `[batch, seq]`.
    pub fn sequence_mask(&self) -> NodeId {
        self.mask_on(self.first_sequence_axis().index())
    }

    /// The mask `[batch, seq]` of the axis of the sequence tensor `x`.
    pub fn sequence_mask_like(&self, x: NodeId) -> Result<NodeId> {
        let s = self.check("sequence_mask_like", x)?;
        match s.seq_axis() {
            Some(k) => Ok(self.mask_on(k)),
            None => shape_err(
                "sequence_mask_like",
                format!("needs a sequence tensor, got {s}"),
            ),
        }
    }

    fn mask_on(&self, k: u8) -> NodeId {
        let lengths = self.lengths_of_axis(k);
        let mask = Op::SeqMask {
            lengths,
            begin: 0,
            end: 0,
        };
        self.push(mask, Shape(vec![Dim::Batch, Dim::Seq(k)]))
    }

    /// The mean of `x: [batch, seq]` (e.g. a per-token loss) over every valid step of the
    /// minibatch.
    pub fn sequence_token_mean(&self, x: NodeId) -> Result<NodeId> {
        let (s, _) = self.sequence_operand("sequence_token_mean", x)?;
        if s.rank() != 2 {
            return shape_err(
                "sequence_token_mean",
                format!("needs one value per step [batch, seq], got {s}"),
            );
        }
        let mask = self.sequence_mask_like(x)?;
        let total = self.reduce_sum(self.sequence_reduce_sum(self.mul(x, mask)?)?, &[])?;
        let tokens = self.reduce_sum(self.sequence_reduce_sum(mask)?, &[])?;
        self.div(total, tokens)
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_sequence(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::SeqPick { x, lengths, last } => {
                let placed = Op::SeqPlace { g, lengths, last };
                res.push((x, self.push(placed, shape(x))));
            }
            Op::SeqPlace {
                g: v,
                lengths,
                last,
            } => {
                res.push((
                    v,
                    self.push(
                        Op::SeqPick {
                            x: g,
                            lengths,
                            last,
                        },
                        shape(v),
                    ),
                ));
            }
            Op::SeqReduce { x, max, .. } => {
                let spread = self.sequence_broadcast_as(g, x)?;
                let gx = if max {
                    // To every step equal to the maximum (all of them on ties).
                    let m = self.sequence_broadcast_as(out, x)?;
                    let hit = self.binary(crate::BinaryOp::Eq, x, m)?;
                    self.mul(spread, hit)?
                } else {
                    spread
                };
                res.push((x, gx));
            }
            Op::SeqBroadcast { v, .. } => res.push((v, self.sequence_reduce_sum(g)?)),
            Op::SeqShift {
                x,
                init,
                lengths,
                future,
            } => {
                // The adjoint of a shift is the opposite shift with a zero initial state.
                if wants(x) {
                    let zero = self.scalar(0.0);
                    let back = if future {
                        self.past_value(g, zero)?
                    } else {
                        self.future_value(g, zero)?
                    };
                    res.push((x, back));
                }
                if wants(init) {
                    // The initial state stands at the first step (past) or the last (future).
                    let op = Op::SeqPick {
                        x: g,
                        lengths,
                        last: future,
                    };
                    res.push((init, self.push(op, shape(init))));
                }
            }
            Op::SeqMask { .. } => {}
            _ => unreachable!("grad_sequence takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
