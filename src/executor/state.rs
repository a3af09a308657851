//! Reading and writing parameters and state: one at a time, or all by name (checkpoints).

use super::{Executor, NamedTensor};
use crate::graph::{NodeId, Op};
use crate::tensor::Tensor;
use crate::{Error, Result};

impl Executor {
    /// Reads a parameter's current values.
    pub fn parameter(&self, id: NodeId) -> Result<Vec<f32>> {
        self.param_tensor(id)?.to_vec(&self.ctx)
    }

    /// Overwrites a parameter's values.
    pub fn set_parameter(&mut self, id: NodeId, data: &[f32]) -> Result<()> {
        let t = self.param_tensor(id)?;
        t.write(&self.ctx, data)
    }

    pub(super) fn param_tensor(&self, id: NodeId) -> Result<&Tensor> {
        match self.nodes.get(id.0).map(|n| &n.op) {
            Some(Op::Param { .. }) => Ok(&self.persistent[&id]),
            _ => Err(Error::Invalid(format!("node {} is not a parameter", id.0))),
        }
    }

    /// Every variable (parameters and state) and every learner state tensor, by name:
    /// variables under their own names, learner state as `{parameter}/learner{k}`.
    pub fn export_state(&self) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { name, .. } = &node.op {
                let t = &self.persistent[&NodeId(i)];
                out.push((name.clone(), t.shape().to_vec(), t.to_vec(&self.ctx)?));
            }
        }
        if let Some(l) = &self.learner {
            for (p, _, state) in &l.params {
                let Op::Param { name, .. } = &self.nodes[p.0].op else {
                    continue;
                };
                for (k, t) in state.iter().enumerate() {
                    out.push((
                        format!("{name}/learner{k}"),
                        t.shape().to_vec(),
                        t.to_vec(&self.ctx)?,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Restores what [`Executor::export_state`] produced; every tensor must be present with
    /// the same shape.
    pub fn import_state(&mut self, entries: &[NamedTensor]) -> Result<()> {
        let mut targets: Vec<(String, &Tensor)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { name, .. } = &node.op {
                targets.push((name.clone(), &self.persistent[&NodeId(i)]));
            }
        }
        if let Some(l) = &self.learner {
            for (p, _, state) in &l.params {
                let Op::Param { name, .. } = &self.nodes[p.0].op else {
                    continue;
                };
                for (k, t) in state.iter().enumerate() {
                    targets.push((format!("{name}/learner{k}"), t));
                }
            }
        }
        for (name, t) in &targets {
            let Some((_, shape, data)) = entries.iter().find(|e| &e.0 == name) else {
                return Err(Error::Invalid(format!("state: {name} is missing")));
            };
            if shape != t.shape() {
                return Err(Error::Invalid(format!(
                    "state: {name} has shape {shape:?}, the model {:?}",
                    t.shape()
                )));
            }
            t.write(&self.ctx, data)?;
        }
        Ok(())
    }
}
