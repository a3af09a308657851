//! Checking a feed against the inputs a plan needs.

use super::{Executor, Feed};
use crate::graph::{NodeId, Op};
use crate::plan;
use crate::{Error, Result};

impl Executor {
    /// Checks the feed against the inputs the targets need and returns the batch size.
    pub(super) fn batch_size(
        &self,
        targets: &[NodeId],
        feed: &Feed,
        training: bool,
    ) -> Result<usize> {
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
        for (i, node) in self.nodes.iter().enumerate() {
            let Op::Input { name } = &node.op else {
                continue;
            };
            if !need[i] {
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
            match &batch {
                Some((b0, n0)) if *b0 != b => {
                    return Err(Error::Feed(format!(
                    "inputs disagree on the batch size: '{n0}' has {b0} samples, '{name}' has {b}"
                )))
                }
                _ => batch = Some((b, name.clone())),
            }
        }
        Ok(batch.map_or(1, |b| b.0))
    }

    /// The batch size of `feed` for computing `targets` in a training step (checked as
    /// a step would check it).
    pub(crate) fn feed_batch(&self, targets: &[NodeId], feed: &Feed) -> Result<usize> {
        self.batch_size(targets, feed, true)
    }
}
