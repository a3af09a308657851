//! Layers: small builders that add a named block of ops and parameters to a [`Graph`].
//!
//! A layer's parameters are called `{name}.weight`, `{name}.bias`, … where [`Sequential`]
//! names layers by kind and position (`conv1`, `conv2`, `dense1`, …), so names are stable
//! across runs and usable in checkpoints. Training and evaluation behaviour (dropout, batch
//! norm) is chosen by the executor per call, not stored in the layer.

mod attention;
mod layers;

pub use attention::AdditiveAttention;

pub use layers::{
    Activation, AvgPool2d, BatchNorm, Bidirectional, Conv2d, Dense, Dropout, Embedding, Flatten,
    Gru, Last, Lstm, MaxPool2d, Rnn, Stabilizer,
};

use crate::graph::{Graph, NodeId};
use crate::Result;

/// A block of the model.
pub trait Layer {
    /// The kind, used to name the layer inside a [`Sequential`] (`dense`, `conv`, …).
    fn kind(&self) -> &'static str;
    /// Adds the layer's ops to `g` on input `x`, naming its parameters `{name}.…`.
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId>;
}

/// Layers applied one after the other.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// An empty stack.
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Adds every layer to `g`, naming them `{kind}{k}` with k counting from 1 per kind.
    pub fn build(&self, g: &Graph, x: NodeId) -> Result<NodeId> {
        let mut counts = std::collections::HashMap::new();
        let mut h = x;
        for layer in &self.layers {
            let k = counts.entry(layer.kind()).or_insert(0);
            *k += 1;
            h = layer.build(g, &format!("{}{}", layer.kind(), k), h)?;
        }
        Ok(h)
    }
}
