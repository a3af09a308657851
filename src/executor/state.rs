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
        if !id.of_graph(self.tag) {
            return Err(Error::Invalid(format!(
                "node {} belongs to another graph than this executor's",
                id.0
            )));
        }
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
                let t = &self.persistent[&NodeId::at(i)];
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

    /// Restores what [`Executor::export_state`] produced, all or nothing: every tensor of
    /// the model must be present with its shape and finite values, and no other may be; the
    /// first difference is the error, and nothing is written unless everything matches.
    pub fn import_state(&mut self, entries: &[NamedTensor]) -> Result<()> {
        self.import_checked(entries, false).map(|_| ())
    }

    /// Like [`Executor::import_state`] but tensors of the model absent from `entries` keep
    /// their values, and tensors the model lacks are ignored: returns the names of both,
    /// the model's missing ones first. Shapes and values are still checked before anything
    /// is written.
    pub fn import_state_partial(&mut self, entries: &[NamedTensor]) -> Result<Vec<String>> {
        self.import_checked(entries, true)
    }

    fn import_checked(&mut self, entries: &[NamedTensor], partial: bool) -> Result<Vec<String>> {
        let mut targets: Vec<(String, &Tensor)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { name, .. } = &node.op {
                targets.push((name.clone(), &self.persistent[&NodeId::at(i)]));
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
        let bad = |m: String| Err(Error::Invalid(format!("state: {m}")));
        let mut skipped = Vec::new();
        let mut writes = Vec::new();
        for (name, t) in &targets {
            let Some((_, shape, data)) = entries.iter().find(|e| &e.0 == name) else {
                if partial {
                    skipped.push(name.clone());
                    continue;
                }
                return bad(format!("{name} is in the model but not in the checkpoint"));
            };
            if shape != t.shape() {
                return bad(format!(
                    "{name} has shape {shape:?} in the checkpoint, {:?} in the model",
                    t.shape()
                ));
            }
            if data.len() != t.len() {
                return bad(format!(
                    "{name} holds {} values for shape {shape:?}",
                    data.len()
                ));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return bad(format!("{name}[{i}] is {}, not a finite number", data[i]));
            }
            writes.push((*t, data));
        }
        for (name, _, _) in entries {
            if !targets.iter().any(|t| &t.0 == name) {
                if !partial {
                    return bad(format!("{name} is in the checkpoint but not in the model"));
                }
                skipped.push(name.clone());
            }
        }
        for (t, data) in writes {
            t.write(&self.ctx, data)?;
        }
        Ok(skipped)
    }
}
