//! The additive-attention layer: projections of the queries and the memory, then
//! [`Graph::additive_attention`] over the memory.

use super::{Dense, Layer};
use crate::graph::{Graph, Init, NodeId};
use crate::Result;

/// Bahdanau's additive attention: `α = softmax_j(vᵀ tanh(Wq·q_t + Wk·m_j + b))` over each
/// sequence's memory steps, and the context `Σ_j α_j·m_j`. Parameters `{name}.query.weight`
/// `[Dq, dim]`, `{name}.key.weight` `[Dm, dim]`, `{name}.key.bias` and `{name}.score`
/// `[dim]`. Queries and memory may be on different sequence axes.
#[derive(Clone, Copy, Debug)]
pub struct AdditiveAttention {
    /// Width of the projections (the attention's hidden size).
    pub dim: usize,
}

impl AdditiveAttention {
    /// The context `[batch, seq_q, Dm]` of each query step of `query: [batch, seq_q, Dq]` over
    /// `memory: [batch, seq_m, Dm]`.
    pub fn apply(&self, g: &Graph, name: &str, query: NodeId, memory: NodeId) -> Result<NodeId> {
        let alpha = self.weights(g, name, query, memory)?;
        g.attention_apply(alpha, memory)
    }

    /// The weights `α: [batch, seq_q, seq_m]` alone (e.g. to show what a decoder reads).
    pub fn weights(&self, g: &Graph, name: &str, query: NodeId, memory: NodeId) -> Result<NodeId> {
        let mut wq = Dense::new(self.dim);
        wq.bias = false;
        let q = wq.build(g, &format!("{name}.query"), query)?;
        let k = Dense::new(self.dim).build(g, &format!("{name}.key"), memory)?;
        let s = 1.0 / (self.dim as f32).sqrt();
        let init = Init::Uniform { low: -s, high: s };
        let v = g.parameter(&format!("{name}.score"), &[self.dim], init)?;
        g.attention_weights(q, k, v)
    }
}
