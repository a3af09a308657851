//! ONNX, both ways: export a graph's inference part (inputs → chosen outputs, parameters as
//! initializers) and import an ONNX model into a [`Graph`] whose initializers are trainable
//! parameters, so a model trained elsewhere can be evaluated and fine-tuned here.
//!
//! The protobuf types are prost's code for the published `onnx.proto` (`generated.rs`, made
//! by `tests/onnx_schema.rs`, which checks it stays in step with the schema). A [`Model`] is a
//! graph with its named inputs and outputs; [`Model::save`] / [`Model::load`] keep a whole
//! model (graph and weights) in one `.onnx` file. Checkpoints (weights and learner state) stay
//! safetensors files ([`crate::checkpoint`]).
//!
//! ```no_run
//! use wgrad::{onnx, Context, Executor, Graph, Init};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let g = Graph::new();
//! let x = g.input("x", &[3])?;
//! let w = g.parameter("w", &[3, 2], Init::GlorotUniform)?;
//! let z = g.softmax(g.matmul(x, w)?, -1)?;
//! let exec = Executor::new(&ctx, &g)?;
//! onnx::save("model.onnx".as_ref(), &g, &exec, &[("probabilities", z)])?;
//! let model = onnx::Model::load("model.onnx".as_ref())?;
//! let mut exec = Executor::new(&ctx, model.graph())?;
//! let p = exec.eval(&[model.output("probabilities")?], &[(model.input("x")?, &[1.0, 2.0, 3.0][..])])?;
//! # Ok(()) }
//! ```

mod export;
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, dead_code, missing_docs, rustdoc::all)]
mod generated;
mod import;
mod proto;

use std::path::Path;

use prost::Message;

use crate::executor::Executor;
use crate::graph::{Graph, NodeId};
use crate::{files, Error, Result};

/// The ONNX opset that exports are written with.
pub const OPSET: i64 = export::OPSET;

/// The ONNX bytes of `outputs` (name, node) of `graph`, with the parameters' current values
/// read from `exec`. Recurrences (LSTM, GRU, RNN scans) become ONNX `LSTM`/`GRU`/`RNN` nodes
/// and a sequence input keeps its `[batch, seq, ..]` layout beside a `sequence lengths` input.
///
/// # Errors
/// The node of an op with no ONNX equivalent (losses, gradient ops, sequence ops other than
/// recurrences and first/last steps), a name used twice, or a parameter `exec` does not hold.
pub fn export(graph: &Graph, exec: &Executor, outputs: &[(&str, NodeId)]) -> Result<Vec<u8>> {
    let weights = |id: NodeId| exec.parameter(id);
    Ok(export::model(graph, &weights, outputs)?.encode_to_vec())
}

/// [`export`], written atomically to `path`.
///
/// # Errors
/// [`export`]'s errors, or a file that cannot be written (nothing half-written is left).
pub fn save(path: &Path, graph: &Graph, exec: &Executor, outputs: &[(&str, NodeId)]) -> Result<()> {
    files::write_atomic(path, &export(graph, exec, outputs)?)
}

/// A graph with named inputs and outputs: what an ONNX file holds.
pub struct Model {
    graph: Graph,
    inputs: Vec<(String, NodeId)>,
    outputs: Vec<(String, NodeId)>,
}

impl Model {
    /// A model of `graph` whose outputs are `outputs` (name, node); its inputs are the
    /// graph's inputs that the outputs need.
    pub fn new(graph: Graph, outputs: &[(&str, NodeId)]) -> Model {
        let inputs = graph
            .inputs()
            .into_iter()
            .filter_map(|id| graph.name(id).map(|n| (n, id)))
            .collect();
        let outputs = outputs.iter().map(|(n, id)| (n.to_string(), *id)).collect();
        Model {
            graph,
            inputs,
            outputs,
        }
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The inputs, by name, in the file's order.
    pub fn inputs(&self) -> &[(String, NodeId)] {
        &self.inputs
    }

    /// The outputs, by name, in the file's order.
    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// The input called `name`; an error lists the inputs there are.
    pub fn input(&self, name: &str) -> Result<NodeId> {
        find(&self.inputs, name, "input")
    }

    /// The output called `name`; an error lists the outputs there are.
    pub fn output(&self, name: &str) -> Result<NodeId> {
        find(&self.outputs, name, "output")
    }

    /// The ONNX bytes of this model, with the weights `exec` (an executor of this model's
    /// graph) holds now.
    pub fn to_onnx(&self, exec: &Executor) -> Result<Vec<u8>> {
        let outputs: Vec<(&str, NodeId)> = self
            .outputs
            .iter()
            .map(|(n, id)| (n.as_str(), *id))
            .collect();
        export(&self.graph, exec, &outputs)
    }

    /// Writes the model (graph and `exec`'s current weights) to `path` as ONNX, atomically.
    pub fn save(&self, path: &Path, exec: &Executor) -> Result<()> {
        files::write_atomic(path, &self.to_onnx(exec)?)
    }

    /// The model in ONNX `bytes`: its initializers become trainable parameters (those that
    /// only feed running statistics become state) that start from the file's values. Every
    /// input's first axis is the batch axis, except a sequence input: one whose second axis
    /// is symbolic too, or one an `LSTM`/`GRU`/`RNN` reads. A sequence input is fed
    /// batch-major (`[batch, seq, ..]`, as wgrad feeds every sequence) even where the file
    /// holds it time-major (`[seq, batch, ..]`, PyTorch's `nn.LSTM` without `batch_first`);
    /// its lengths are the input the recurrences take as `sequence_lens`, or, in a file
    /// without one, an added input `sequence lengths`. An output the file holds with its
    /// batch axis elsewhere than first (`[seq, batch, ..]`, `[directions, batch, H]`) comes
    /// out with its batch axis (and sequence axis) first, the other axes in the file's order.
    /// A recurrence's weights become parameters in wgrad's layout, per direction (`W.forward`,
    /// `W.reverse` when bidirectional). Errors name the ONNX node (name and op type) of an op
    /// wgrad does not import, or an attribute it does not support.
    pub fn from_onnx(bytes: &[u8]) -> Result<Model> {
        let proto = generated::ModelProto::decode(bytes)
            .map_err(|e| Error::Invalid(format!("onnx: not an ONNX model: {e}")))?;
        import::model(&proto)
    }

    /// [`Model::from_onnx`] of the file at `path`; errors name the file.
    ///
    /// # Errors
    /// An unreadable file, bytes that are not an ONNX model, a model without a graph, or a
    /// node wgrad cannot import (named with its node name and op type).
    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Model::from_onnx(&bytes).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

fn find(list: &[(String, NodeId)], name: &str, what: &str) -> Result<NodeId> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| *id)
        .ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            Error::Invalid(format!(
                "onnx model: no {what} called '{name}' (it has {names:?})"
            ))
        })
}
