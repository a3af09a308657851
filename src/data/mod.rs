//! Data: an in-memory [`Dataset`] of named streams and a [`MinibatchSource`] that shuffles
//! per epoch and prefetches on a background thread; readers for MNIST's IDX files, CNTK's
//! text format (CTF, samples and sequences) and the CMU Pronouncing Dictionary;
//! [`SequenceBatch`], which packs sequences of different lengths, and [`SequenceSource`],
//! which cuts sequences into minibatches by token count, bucketed by length.
//!
//! Every reader returns a [`Result`] whose error names the file (and, for
//! text formats, the line and column); loads are all-or-nothing.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wgrad::data::{mnist, MinibatchSource};
//! # fn main() -> wgrad::Result<()> {
//! // train-images-idx3-ubyte(.gz) and friends; `mnist::download(dir)` fetches them.
//! let (train, test) = mnist::load("data/mnist".as_ref())?;
//! println!("{} training and {} test digits", train.len(), test.len());
//! // Minibatches of 64, shuffled with seed 7, two prefetched on a background thread.
//! for mb in MinibatchSource::epoch(Arc::new(train), 64, Some(7), 0, 2)? {
//!     let images = &mb.streams[0]; // mb.len rows of 784 pixels
//!     assert_eq!(images.len(), mb.len * 784);
//! }
//! # Ok(()) }
//! ```

pub mod cmudict;
pub mod ctf;
pub mod ctf_sequences;
pub mod download;
pub mod mnist;
mod sequence_source;
mod sequences;
mod source;

pub use sequence_source::{SequenceBatching, SequenceMinibatch, SequenceSource};
pub use sequences::SequenceBatch;
pub use source::{Minibatch, MinibatchSource};

use crate::{Error, Result};

/// Samples as named streams of fixed dimension, stored row-major: stream `s` of sample `i`
/// is `data[i * dim .. (i + 1) * dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    streams: Vec<(String, usize, Vec<f32>)>,
    len: usize,
}

impl Dataset {
    /// An empty dataset with no streams.
    pub fn new() -> Dataset {
        Dataset::default()
    }

    /// Adds a stream; its length must match the streams already present.
    pub fn with_stream(mut self, name: &str, dim: usize, data: Vec<f32>) -> Result<Dataset> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::Invalid(format!(
                "dataset: stream {name} has {} values, not a multiple of its dimension {dim}",
                data.len()
            )));
        }
        let n = data.len() / dim;
        if !self.streams.is_empty() && n != self.len {
            return Err(Error::Invalid(format!(
                "dataset: stream {name} has {n} samples, the others {}",
                self.len
            )));
        }
        if self.stream(name).is_some() {
            return Err(Error::Invalid(format!(
                "dataset: stream {name} already exists"
            )));
        }
        self.len = n;
        self.streams.push((name.to_string(), dim, data));
        Ok(self)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stream names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.streams.iter().map(|s| s.0.as_str()).collect()
    }

    /// The data of a stream.
    pub fn stream(&self, name: &str) -> Option<&[f32]> {
        self.streams.iter().find(|s| s.0 == name).map(|s| &s.2[..])
    }

    /// The dimension of a stream.
    pub fn dim(&self, name: &str) -> Option<usize> {
        self.streams.iter().find(|s| s.0 == name).map(|s| s.1)
    }

    /// The samples at `indices`, stream by stream; an index past the end is an error.
    pub fn gather(&self, indices: &[usize]) -> Result<Vec<Vec<f32>>> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len) {
            return Err(Error::Invalid(format!(
                "dataset: sample {i} asked of a dataset of {} samples",
                self.len
            )));
        }
        Ok(self.gather_valid(indices))
    }

    /// [`Dataset::gather`] of indices known to be in range.
    pub(crate) fn gather_valid(&self, indices: &[usize]) -> Vec<Vec<f32>> {
        self.streams
            .iter()
            .map(|(_, dim, data)| {
                let mut out = Vec::with_capacity(indices.len() * dim);
                for &i in indices {
                    out.extend_from_slice(&data[i * dim..(i + 1) * dim]);
                }
                out
            })
            .collect()
    }

    /// Samples `range` as a new dataset (e.g. a validation split); a range reaching past
    /// the end is an error.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Dataset> {
        if range.start > range.end || range.end > self.len {
            return Err(Error::Invalid(format!(
                "dataset: samples {range:?} asked of a dataset of {} samples",
                self.len
            )));
        }
        let idx: Vec<usize> = range.collect();
        let len = idx.len();
        let streams = self
            .streams
            .iter()
            .zip(self.gather_valid(&idx))
            .map(|((n, d, _), v)| (n.clone(), *d, v))
            .collect();
        Ok(Dataset { streams, len })
    }
}
