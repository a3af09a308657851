//! Checkpoints as safetensors files: every variable and learner state tensor in f32, and the
//! training counters in the metadata. Files are written atomically (temp file + rename), so
//! a crash never leaves a half-written checkpoint behind.

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
    pub fn save_checkpoint(&mut self, path: &Path, meta: &HashMap<String, String>) -> Result<()> {
        let state = self.exec.export_state()?;
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
        info.insert("wgrad.step".into(), self.exec.step().to_string());
        info.insert(
            "wgrad.smoothed_count".into(),
            self.smoothed_count.to_string(),
        );
        let data = safetensors::tensor::serialize(views, Some(info))
            .map_err(|e| Error::Invalid(format!("checkpoint: {e}")))?;
        write_atomic(path, &data)
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] for the same model and
    /// learner, and returns its metadata.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<HashMap<String, String>> {
        let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
        let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
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
            entries.push((name, view.shape().to_vec(), data));
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
        self.exec
            .import_state(&entries)
            .map_err(|e| bad(e.to_string()))?;
        self.minibatches = minibatches;
        self.exec.set_step(step as u32);
        self.smoothed_count = smoothed_count;
        Ok(meta)
    }
}
