//! Additive (Bahdanau) attention of queries on one sequence axis over keys on another, with
//! its gradient rules: `α = softmax_j(Σ_a v[a]·tanh(q[t, a] + k[j, a]))` over each
//! sequence's valid keys, and the context `Σ_j α[t, j]·values[j]`. The weights are
//! `[batch, seq_q, seq_k]`: a tensor with the keys' axis as its last, padded, dimension.

use crate::error::shape_err;
use crate::graph::{AttnPart, Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
    /// Attention weights `α: [batch, seq_q, seq_k]` of queries `q: [batch, seq_q, A]` over
    /// keys `k: [batch, seq_k, A]` (already projected) with the score vector `v: [A]`:
    /// each valid query's weights are a softmax over its sequence's valid keys (zeros
    /// elsewhere, and everywhere for a sequence without keys).
    pub fn attention_weights(&self, q: NodeId, k: NodeId, v: NodeId) -> Result<NodeId> {
        let op = "attention_weights";
        let (sq, q_lengths) = self.sequence_operand(op, q)?;
        let (sk, k_lengths) = self.sequence_operand(op, k)?;
        let sv = self.check(op, v)?;
        let width = |s: &Shape| match s.0.as_slice() {
            [Dim::Batch, Dim::Seq(_), Dim::Fixed(a)] => Some(*a),
            _ => None,
        };
        match (width(&sq), width(&sk), sv.0.as_slice()) {
            (Some(a), Some(b), [Dim::Fixed(c)]) if a == b && b == *c => {}
            _ => {
                return shape_err(
                    op,
                    format!("needs q [batch, seq, A], k [batch, seq', A] and v [A], got {sq}, {sk} and {sv}"),
                )
            }
        }
        let out = Shape(vec![Dim::Batch, sq.0[1], sk.0[1]]);
        Ok(self.push(
            attention(AttnPart::Weights, &[q, k, v], q_lengths, k_lengths),
            out,
        ))
    }

    /// The context `Σ_j α[t, j]·values[j]: [batch, seq_q, E]` of attention weights
    /// `alpha: [batch, seq_q, seq_k]` (from [`Graph::attention_weights`]) and `values:
    /// [batch, seq_k, E]`.
    pub fn attention_apply(&self, alpha: NodeId, values: NodeId) -> Result<NodeId> {
        let op = "attention_apply";
        let (sa, q_lengths) = self.sequence_operand(op, alpha)?;
        let (sv, k_lengths) = self.sequence_operand(op, values)?;
        let e = match (sa.0.as_slice(), sv.0.as_slice()) {
            ([_, _, Dim::Seq(ka)], [_, Dim::Seq(kv), Dim::Fixed(e)]) if ka == kv => *e,
            _ => {
                return shape_err(
                    op,
                    format!("needs weights [batch, seq, seq'] and values [batch, seq', E], got {sa} and {sv}"),
                )
            }
        };
        let out = Shape(vec![Dim::Batch, sa.0[1], Dim::Fixed(e)]);
        let node = attention(AttnPart::Apply, &[alpha, values], q_lengths, k_lengths);
        Ok(self.push(node, out))
    }

    /// Additive attention in one call: the context of [`Graph::attention_weights`] over
    /// `values`.
    pub fn additive_attention(
        &self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        values: NodeId,
    ) -> Result<NodeId> {
        let alpha = self.attention_weights(q, k, v)?;
        self.attention_apply(alpha, values)
    }

    /// The gradient rules: (input, contribution) pairs for the gradient `g` of node `out`.
    pub(crate) fn grad_attention(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let Op::Attention {
            part,
            args,
            q_lengths,
            k_lengths,
            ..
        } = *op
        else {
            unreachable!("grad_attention takes attention, not {op:?}");
        };
        let lens = (q_lengths, k_lengths);
        let part_of = |p: AttnPart, a: &[NodeId], like: NodeId| {
            self.push(attention(p, a, lens.0, lens.1), self.shape(like))
        };
        let mut res = Vec::new();
        match part {
            AttnPart::Apply => {
                let [alpha, values, ..] = args;
                if wants(alpha) {
                    res.push((
                        alpha,
                        part_of(AttnPart::ApplyGradAlpha, &[g, values], alpha),
                    ));
                }
                if wants(values) {
                    res.push((
                        values,
                        part_of(AttnPart::ApplyGradValues, &[alpha, g], values),
                    ));
                }
            }
            AttnPart::Weights => {
                let [q, k, v, _] = args;
                let dscore = part_of(AttnPart::ScoreGrad, &[out, g], out);
                let qkvd = [q, k, v, dscore];
                if wants(q) {
                    res.push((q, part_of(AttnPart::GradQ, &qkvd, q)));
                }
                if wants(k) {
                    res.push((k, part_of(AttnPart::GradK, &qkvd, k)));
                }
                if wants(v) {
                    let rows = part_of(AttnPart::GradV, &qkvd, q);
                    let per_seq = self.sequence_reduce_sum(rows)?;
                    res.push((v, self.reduce_sum(per_seq, &[0])?));
                }
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "attention: the gradient of its gradient part {part:?} is not supported"
                )))
            }
        }
        Ok(res)
    }
}

/// The node of one part with these operands.
fn attention(part: AttnPart, operands: &[NodeId], q_lengths: NodeId, k_lengths: NodeId) -> Op {
    let mut args = [operands[0]; 4];
    args[..operands.len()].copy_from_slice(operands);
    Op::Attention {
        part,
        args,
        n_args: operands.len() as u8,
        q_lengths,
        k_lengths,
    }
}
