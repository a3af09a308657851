//! Checking a feed against the inputs a plan needs, and reading the sizes it binds: the
//! batch size, and for sequence inputs the padded number of steps.

use super::{Executor, Feed};
use crate::graph::{NodeId, Op, SEQUENCE_LENGTHS};
use crate::plan;
use crate::shape::Sizes;
use crate::{Error, Result};

impl Executor {
    /// Checks the feed against the inputs the targets need and returns the sizes it binds.
    pub(super) fn sizes(&self, targets: &[NodeId], feed: &Feed, training: bool) -> Result<Sizes> {
        let need = plan::needed(&self.nodes, targets, training);
        for (id, _) in feed {
            if !matches!(self.nodes.get(id.0).map(|n| &n.op), Some(Op::Input { .. })) {
                return Err(Error::Feed(format!(
                    "node {} is not an input variable",
                    id.0
                )));
            }
        }
        let mut batch: Option<(usize, String)> = None;
        // Sequence inputs: (name, values, rows = batch · steps).
        let mut sequences: Vec<(String, usize, usize)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Op::Input { name } = &node.op else {
                continue;
            };
            // A fed sequence input sizes the sequence axis even where nothing reads it (a
            // mask alone).
            let sizes_steps = node.shape.has_seq() && feed.iter().any(|(f, _)| f.0 == i);
            if !need[i] && !sizes_steps {
                continue;
            }
            let Some((_, data)) = feed.iter().find(|(f, _)| f.0 == i) else {
                return Err(Error::Feed(format!(
                    "input '{name}' (shape {}) was not fed",
                    node.shape
                )));
            };
            let per = node.shape.per_sample();
            if !node.shape.has_batch() {
                if data.len() != per {
                    return Err(Error::Feed(format!(
                        "input '{name}' (shape {}) needs {per} values, got {}",
                        node.shape,
                        data.len()
                    )));
                }
                continue;
            }
            if data.is_empty() || data.len() % per != 0 {
                return Err(Error::Feed(format!(
                    "input '{name}' (shape {}) needs a non-zero multiple of {per} values, got {}",
                    node.shape,
                    data.len()
                )));
            }
            let b = data.len() / per;
            if node.shape.has_seq() {
                sequences.push((name.clone(), data.len(), b));
                continue;
            }
            match &batch {
                Some((b0, n0)) if *b0 != b => {
                    return Err(Error::Feed(format!(
                    "inputs disagree on the batch size: '{n0}' has {b0} samples, '{name}' has {b}"
                )))
                }
                _ => batch = Some((b, name.clone())),
            }
        }
        if sequences.is_empty() {
            let batch = batch.map_or(1, |b| b.0);
            if (0..self.nodes.len()).any(|i| need[i] && self.nodes[i].shape.has_seq()) {
                return Err(Error::Feed(
                    "the sequence axis has no size: feed a sequence input with the lengths".into(),
                ));
            }
            return Ok(Sizes::batch(batch));
        }
        self.sequence_sizes(feed, batch, &sequences)
    }

    /// The sizes of a feed with sequence inputs: the batch is the number of sequence
    /// lengths, and every sequence input holds batch × steps rows.
    fn sequence_sizes(
        &self,
        feed: &Feed,
        other: Option<(usize, String)>,
        sequences: &[(String, usize, usize)],
    ) -> Result<Sizes> {
        let lengths = self
            .nodes
            .iter()
            .position(|n| matches!(&n.op, Op::Input { name } if name == SEQUENCE_LENGTHS))
            .and_then(|i| feed.iter().find(|(f, _)| f.0 == i))
            .map(|(_, d)| *d)
            .ok_or_else(|| {
                Error::Feed(format!(
                    "sequence input '{}' needs the sequence lengths fed too (Graph::sequence_lengths, or SequenceBatch::feed)",
                    sequences[0].0
                ))
            })?;
        let batch = lengths.len();
        if let Some((b, name)) = other.filter(|o| o.0 != batch) {
            return Err(Error::Feed(format!(
                "input '{name}' has {b} samples but {batch} sequence lengths were fed"
            )));
        }
        let (name, values, rows) = &sequences[0];
        if rows % batch != 0 {
            return Err(Error::Feed(format!(
                "sequence input '{name}' has {values} values ({rows} steps in all), not the same number of steps for each of the {batch} sequences"
            )));
        }
        let steps = rows / batch;
        for (other, _, r) in sequences {
            if r != rows {
                return Err(Error::Feed(format!(
                    "sequence inputs disagree on their padded steps: '{name}' has {rows} rows, '{other}' has {r}"
                )));
            }
        }
        for (k, &l) in lengths.iter().enumerate() {
            if l.fract() != 0.0 || l < 1.0 || l as usize > steps {
                return Err(Error::Feed(format!(
                    "sequence {k} has length {l}: lengths must be whole numbers from 1 to the {steps} padded steps"
                )));
            }
        }
        Ok(Sizes { batch, steps })
    }

    /// The samples `feed` holds for computing `targets` in a training step (checked as a
    /// step would): the batch size, or with `per_token` the steps of all sequences.
    pub(crate) fn feed_samples(
        &self,
        targets: &[NodeId],
        feed: &Feed,
        per_token: bool,
    ) -> Result<usize> {
        let sizes = self.sizes(targets, feed, true)?;
        let lengths = self
            .nodes
            .iter()
            .position(|n| matches!(&n.op, Op::Input { name } if name == SEQUENCE_LENGTHS))
            .and_then(|i| feed.iter().find(|(f, _)| f.0 == i));
        Ok(match lengths {
            Some((_, l)) if per_token => l.iter().map(|&v| v as usize).sum(),
            _ => sizes.batch,
        })
    }
}
