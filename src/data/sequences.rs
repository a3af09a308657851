//! Packing sequences of different lengths into one padded minibatch, and unpacking results.

use crate::graph::NodeId;
use crate::{Error, Result};

/// A minibatch of sequences packed as a sequence input wants them: `[batch, steps,
/// features]` row-major, padded with zeros to `steps`, with each sequence's length. Users hand
/// over the sequences as they are; padding never reaches a sequence op.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceBatch {
    values: Vec<f32>,
    lengths: Vec<f32>,
    steps: usize,
    features: usize,
}

impl SequenceBatch {
    /// Packs `sequences` (each `len × features` values, step after step), padded to the
    /// longest. Minibatches of a new longest length get a plan of their own; to share plans,
    /// pad to a fixed number of steps with [`SequenceBatch::pack_to`].
    pub fn pack(sequences: &[&[f32]], features: usize) -> Result<SequenceBatch> {
        let longest = sequences
            .iter()
            .map(|s| s.len() / features.max(1))
            .max()
            .unwrap_or(0);
        SequenceBatch::pack_to(sequences, features, longest)
    }

    /// Packs `sequences` padded to `steps` steps (at least the longest).
    pub fn pack_to(sequences: &[&[f32]], features: usize, steps: usize) -> Result<SequenceBatch> {
        let bad = |m: String| Err(Error::Invalid(format!("SequenceBatch: {m}")));
        if sequences.is_empty() {
            return bad("no sequences".into());
        }
        if features == 0 {
            return bad("features must be at least 1".into());
        }
        let mut values = vec![0.0; sequences.len() * steps * features];
        let mut lengths = Vec::with_capacity(sequences.len());
        for (k, s) in sequences.iter().enumerate() {
            if s.is_empty() || !s.len().is_multiple_of(features) {
                return bad(format!(
                    "sequence {k} has {} values, not a non-zero multiple of {features} features",
                    s.len()
                ));
            }
            let len = s.len() / features;
            if len > steps {
                return bad(format!(
                    "sequence {k} has {len} steps, more than the {steps} padded steps"
                ));
            }
            let at = k * steps * features;
            values[at..at + s.len()].copy_from_slice(s);
            lengths.push(len as f32);
        }
        Ok(SequenceBatch {
            values,
            lengths,
            steps,
            features,
        })
    }

    /// The padded values, `[batch, steps, features]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Each sequence's length, as the graph's sequence-lengths input takes them.
    pub fn lengths(&self) -> &[f32] {
        &self.lengths
    }

    /// The padded number of steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The number of sequences.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// True without sequences (never, once packed).
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The feed of sequence input `input` and the graph's `lengths` input
    /// ([`Graph::sequence_lengths`](crate::Graph::sequence_lengths)).
    pub fn feed(&self, input: NodeId, lengths: NodeId) -> [(NodeId, &[f32]); 2] {
        [(input, &self.values), (lengths, &self.lengths)]
    }

    /// Splits a `[batch, steps, ..]` result into one `Vec` per sequence holding its valid
    /// steps only (`values.len()` must be batch · steps · k for some k).
    pub fn unpack(&self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
        let rows = self.len() * self.steps;
        if rows == 0 || !values.len().is_multiple_of(rows) {
            return Err(Error::Invalid(format!(
                "SequenceBatch::unpack: {} values are not {} sequences × {} steps × some size",
                values.len(),
                self.len(),
                self.steps
            )));
        }
        let per = values.len() / rows;
        Ok(self
            .lengths
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                let at = k * self.steps * per;
                values[at..at + l as usize * per].to_vec()
            })
            .collect())
    }

    /// Features per step.
    pub fn features(&self) -> usize {
        self.features
    }
}
