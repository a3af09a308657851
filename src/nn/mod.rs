//! Layers: small builders that add a named block of ops and parameters to a [`Graph`].
//!
//! A layer's parameters are called `{name}.weight`, `{name}.bias`, … where [`Sequential`]
//! names layers by kind and position (`conv1`, `conv2`, `dense1`, …), so names are stable
//! across runs and usable in checkpoints. Training and evaluation behaviour (dropout, batch
//! norm) is chosen by the executor per call, not stored in the layer.
//!
//! A classifier as a stack of layers, trained with [`Trainer::fit`](crate::Trainer::fit):
//!
//! ```no_run
//! use wgrad::data::Dataset;
//! use wgrad::nn::{Dense, Dropout, Sequential};
//! use wgrad::{Context, FitOptions, Graph, Learner, Trainer};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let g = Graph::with_seed(0);
//! let x = g.input("features", &[4])?;
//! let y = g.input("labels", &[3])?;
//! let z = Sequential::new()
//!     .add(Dense::new(16).relu()) // dense1.weight, dense1.bias
//!     .add(Dropout(0.1))
//!     .add(Dense::new(3)) // dense2.weight, dense2.bias
//!     .build(&g, x)?;
//! let loss = g.cross_entropy_with_softmax(z, y)?;
//! let error = g.classification_error(z, y)?;
//! let data = Dataset::new()
//!     .with_stream("features", 4, vec![0.5; 4 * 8])?
//!     .with_stream("labels", 3, [1.0, 0.0, 0.0].repeat(8))?;
//! let mut trainer = Trainer::new(&ctx, &g, loss, Some(error), Learner::adam(1e-3))?;
//! let opts = FitOptions { epochs: 2, batch: 4, ..Default::default() };
//! trainer.fit(&data, None, &[("features", x), ("labels", y)], &opts)?;
//! # Ok(()) }
//! ```
//!
//! Sequences go through recurrent layers and come out per sequence with [`Last`]:
//!
//! ```
//! use wgrad::nn::{Dense, Last, Lstm, Sequential};
//! use wgrad::data::SequenceBatch;
//! use wgrad::{Context, Executor, Graph};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let g = Graph::new();
//! let x = g.input_sequence("x", &[2])?; // [batch, steps, 2], any lengths
//! let z = Sequential::new().add(Lstm::new(8)).add(Last).add(Dense::new(1)).build(&g, x)?;
//! // Two sequences of 3 and 1 steps: wgrad pads and masks them.
//! let batch = SequenceBatch::pack(&[&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[7.0, 8.0]], 2)?;
//! let mut exec = Executor::new(&ctx, &g)?;
//! let out = exec.eval(&[z], &batch.feed(x, g.sequence_lengths()))?;
//! assert_eq!(out[0].len(), 2); // one value per sequence
//! # Ok(()) }
//! ```

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
