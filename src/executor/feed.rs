//! Checking a feed against the inputs a plan needs, and reading the sizes it binds: the
//! batch size, and for sequence inputs the padded number of steps.

use super::{Executor, Feed};
use crate::graph::{NodeId, Op};
use crate::plan;
use crate::shape::{Dim, Sizes, MAX_SEQ_AXES};
use crate::{Error, Result};

impl Executor {
    /// Checks the feed against the inputs the targets need and returns the sizes it binds.
    pub(super) fn sizes(&self, targets: &[NodeId], feed: &Feed, training: bool) -> Result<Sizes> {
        let need = plan::needed(&self.nodes, targets, training);
        for (id, _) in feed {
            if !id.of_graph(self.tag) {
                return Err(Error::Feed(format!(
                    "node {} belongs to another graph than this executor's",
                    id.0
                )));
            }
            if !matches!(self.nodes.get(id.0).map(|n| &n.op), Some(Op::Input { .. })) {
                return Err(Error::Feed(format!(
                    "node {} is not an input variable",
                    id.0
                )));
            }
        }
        self.check_indices(&need, feed)?;
        let mut batch: Option<(usize, String)> = None;
        // Sequence inputs: (name, values, rows = batch · steps, axis).
        let mut sequences: Vec<(String, usize, usize, u8)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Op::Input { name } = &node.op else {
                continue;
            };
            // A fed sequence input sizes its axis even where nothing reads it (a mask alone).
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
            if let Some(k) = node.shape.seq_axis() {
                sequences.push((name.clone(), data.len(), b, k));
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
        let mut sizes = Sizes::batch(batch.as_ref().map_or(1, |b| b.0));
        let mut sized = [false; MAX_SEQ_AXES];
        for (k, done) in sized.iter_mut().enumerate().take(self.axes.len()) {
            let on_axis: Vec<_> = sequences.iter().filter(|s| s.3 as usize == k).collect();
            if on_axis.is_empty() {
                continue;
            }
            let (b, steps) = self.axis_sizes(feed, k, &batch, &on_axis)?;
            batch = Some((b, format!("the lengths of sequence axis {k}")));
            sizes.batch = b;
            sizes.steps[k] = steps;
            *done = true;
        }
        // A derived axis has the padded steps of the input axis it selects from.
        for (k, axis) in self.axes.iter().enumerate() {
            let root = axis.root as usize;
            if root != k {
                sizes.steps[k] = sizes.steps[root];
                sized[k] = sized[root];
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(k) = node.shape.0.iter().find_map(|d| match d {
                Dim::Seq(k) if need[i] && !sized[*k as usize] => Some(*k),
                _ => None,
            }) {
                return Err(Error::Feed(format!(
                    "sequence axis {k} has no size: feed a sequence input on it with its lengths"
                )));
            }
        }
        Ok(sizes)
    }

    /// Inputs read as indices (by `one_hot` or an embedding) must hold whole numbers in
    /// range: an index past the classes would silently give a zero row (and a loss of 0).
    fn check_indices(&self, need: &[bool], feed: &Feed) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            let (indices, bound, op) = match node.op {
                Op::OneHot { x } => (x, node.shape.0.last().map(|d| d.resolve(1)), "one_hot"),
                Op::GatherRows { table, indices } => {
                    let rows = self.nodes[table.0].shape.0.first().map(|d| d.resolve(1));
                    (indices, rows, "embedding")
                }
                _ => continue,
            };
            let (Some(bound), true) = (bound, need[i]) else {
                continue;
            };
            let Some((_, data)) = feed.iter().find(|(f, _)| *f == indices) else {
                continue;
            };
            let bad = data
                .iter()
                .position(|&v| v.fract() != 0.0 || v < 0.0 || v >= bound as f32);
            if let Some(k) = bad {
                let name = match &self.nodes[indices.0].op {
                    Op::Input { name } => name.as_str(),
                    _ => "?",
                };
                return Err(Error::Feed(format!(
                    "input '{name}' value {k} is {}: {op} (node {i}) needs whole indices from 0 to {}",
                    data[k],
                    bound - 1
                )));
            }
        }
        Ok(())
    }

    /// The batch and padded steps of input sequence axis `k`, from its lengths and the
    /// sequence inputs on it (`(name, values, rows, axis)`), each holding batch × steps rows.
    fn axis_sizes(
        &self,
        feed: &Feed,
        k: usize,
        other: &Option<(usize, String)>,
        sequences: &[&(String, usize, usize, u8)],
    ) -> Result<(usize, usize)> {
        let id = self.axes[k].lengths;
        let lengths = feed
            .iter()
            .find(|(f, _)| *f == id)
            .map(|(_, d)| *d)
            .ok_or_else(|| {
                Error::Feed(format!(
                    "sequence input '{}' needs the lengths of its axis fed too (Graph::sequence_lengths or Graph::axis_lengths, or SequenceBatch::feed)",
                    sequences[0].0
                ))
            })?;
        let batch = lengths.len();
        if let Some((b, name)) = other.as_ref().filter(|o| o.0 != batch) {
            return Err(Error::Feed(format!(
                "input '{name}' has {b} samples but {batch} sequence lengths were fed"
            )));
        }
        let (name, values, rows, _) = sequences[0];
        if rows % batch != 0 {
            return Err(Error::Feed(format!(
                "sequence input '{name}' has {values} values ({rows} steps in all), not the same number of steps for each of the {batch} sequences"
            )));
        }
        let steps = rows / batch;
        for (other, _, r, _) in sequences {
            if r != rows {
                return Err(Error::Feed(format!(
                    "sequence inputs disagree on their padded steps: '{name}' has {rows} rows, '{other}' has {r}"
                )));
            }
        }
        for (s, &l) in lengths.iter().enumerate() {
            if l.fract() != 0.0 || l < 1.0 || l as usize > steps {
                return Err(Error::Feed(format!(
                    "sequence {s} has length {l}: lengths must be whole numbers from 1 to the {steps} padded steps"
                )));
            }
        }
        Ok((batch, steps))
    }

    /// The samples `feed` holds for computing `targets` in a training step (checked as a
    /// step would): the batch size, or with `per_token` (a sequence axis) the valid steps of
    /// all its sequences when its lengths are fed.
    pub(crate) fn feed_samples(
        &self,
        targets: &[NodeId],
        feed: &Feed,
        per_token: Option<u8>,
    ) -> Result<usize> {
        let sizes = self.sizes(targets, feed, true)?;
        let lengths = per_token
            .and_then(|k| self.axes.get(k as usize))
            .and_then(|a| feed.iter().find(|(f, _)| *f == a.lengths));
        Ok(match lengths {
            Some((_, l)) => l.iter().map(|&v| v as usize).sum(),
            None => sizes.batch,
        })
    }
}
