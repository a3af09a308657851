//! Checkpoints as safetensors files: every variable and learner state tensor in f32, and the
//! training counters and the learner's kind in the metadata. Files are written atomically
//! (temp file + rename), so a crash never leaves a half-written checkpoint behind; weights
//! that are not finite are never written; loads check the whole file against the model and
//! the learner before changing anything.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::trainer::Trainer;
use crate::{Error, Result};

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

pub use crate::files::write_atomic;

impl Trainer {
    /// Saves parameters, state, learner state and counters, plus `meta` (e.g. the epoch).
    ///
    /// # Errors
    /// Non-finite weights (nothing is written), or a file that cannot be written (the old
    /// file stays as it was: the write is atomic).
    pub fn save_checkpoint(&mut self, path: &Path, meta: &HashMap<String, String>) -> Result<()> {
        let state = self.exec.export_state()?;
        for (name, _, data) in &state {
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!(
                    "{}: not saved: {name}[{i}] is {}, not a finite number",
                    path.display(),
                    data[i]
                )));
            }
        }
        let bytes: Vec<Vec<u8>> = state
            .iter()
            .map(|(_, _, d)| bytemuck::cast_slice(d).to_vec())
            .collect();
        let mut views = Vec::with_capacity(state.len());
        for ((name, shape, _), b) in state.iter().zip(&bytes) {
            let v = TensorView::new(Dtype::F32, shape.clone(), b)
                .map_err(|e| Error::Invalid(format!("checkpoint {name}: {e}")))?;
            views.push((name.clone(), v));
        }
        let mut info = meta.clone();
        info.insert("wgrad.minibatches".into(), self.minibatches.to_string());
        info.insert("wgrad.learner".into(), self.learner_kind());
        info.insert("wgrad.step".into(), self.exec.step().to_string());
        info.insert(
            "wgrad.smoothed_count".into(),
            self.smoothed_count.to_string(),
        );
        let data = safetensors::tensor::serialize(views, Some(info))
            .map_err(|e| Error::Invalid(format!("checkpoint: {e}")))?;
        write_atomic(path, &data)
    }

    /// The learner's kind as checkpoints record it (its update rule, e.g. `Adam`).
    fn learner_kind(&self) -> String {
        format!("{:?}", self.learner.rule().kind)
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] for the same model and
    /// learner, and returns its metadata. All or nothing: the learner's kind, every tensor's
    /// name, shape, dtype and values and the counters are checked first; the first
    /// difference is the error and the trainer is left as it was.
    ///
    /// # Errors
    /// An unreadable or corrupt file, another learner's checkpoint, a tensor missing, extra,
    /// of another shape or non-finite; the message names the first difference.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<HashMap<String, String>> {
        self.load(path, false).map(|(meta, _)| meta)
    }

    /// Like [`Trainer::load_checkpoint`] but tensors missing from the file keep their
    /// values and tensors the model lacks are ignored (e.g. to start a bigger model from a
    /// smaller one's weights); returns the metadata and the names of both.
    pub fn load_checkpoint_partial(
        &mut self,
        path: &Path,
    ) -> Result<(HashMap<String, String>, Vec<String>)> {
        self.load(path, true)
    }

    fn load(
        &mut self,
        path: &Path,
        partial: bool,
    ) -> Result<(HashMap<String, String>, Vec<String>)> {
        let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
        self.load_bytes(&bytes, &path.display().to_string(), partial)
    }

    /// [`Trainer::load_checkpoint`] of a checkpoint's bytes; errors name it `name`.
    pub fn load_checkpoint_bytes(
        &mut self,
        bytes: &[u8],
        name: &str,
    ) -> Result<HashMap<String, String>> {
        self.load_bytes(bytes, name, false).map(|(meta, _)| meta)
    }

    fn load_bytes(
        &mut self,
        bytes: &[u8],
        name: &str,
        partial: bool,
    ) -> Result<(HashMap<String, String>, Vec<String>)> {
        let bad = |m: String| Error::Invalid(format!("{name}: {m}"));
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        // Checkpoints written before the learner was recorded load into any learner. A
        // partial load from another learner takes the variables but not its state.
        let other_learner = meta
            .get("wgrad.learner")
            .is_some_and(|kind| *kind != self.learner_kind());
        if other_learner && !partial {
            return Err(bad(format!(
                "written by a {} learner, this trainer's is {}",
                meta["wgrad.learner"],
                self.learner_kind()
            )));
        }
        let mut entries = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", view.dtype())));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            if !(other_learner && name.contains("/learner")) {
                entries.push((name, view.shape().to_vec(), data));
            }
        }
        // Every counter is read before anything changes, so a bad file changes nothing.
        let num = |k: &str| -> Result<u64> {
            meta.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(format!("metadata {k} is missing")))
        };
        let (minibatches, step) = (num("wgrad.minibatches")?, num("wgrad.step")?);
        // Absent from checkpoints written before FSAdaGrad: no learner used it then.
        let smoothed_count = match meta.get("wgrad.smoothed_count") {
            Some(v) => v.parse().map_err(|_| {
                bad(format!(
                    "metadata wgrad.smoothed_count is not a number: {v}"
                ))
            })?,
            None => 0.0,
        };
        let skipped = match partial {
            false => self.exec.import_state(&entries).map(|_| Vec::new()),
            true => self.exec.import_state_partial(&entries),
        }
        .map_err(|e| bad(e.to_string()))?;
        self.minibatches = minibatches;
        self.exec.set_step(step);
        self.smoothed_count = smoothed_count;
        Ok((meta, skipped))
    }
}
