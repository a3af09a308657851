//! Minibatches of sequences counted in tokens, as CNTK counts them: each minibatch takes
//! sequences while their steps (the longest stream of each) fit a token budget. Optionally
//! it buckets by length (sequences of about the same length go together, so little is
//! padding), shuffles per epoch from a seed, and packs on a background thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

use super::ctf_sequences::CtfSequences;
use super::SequenceBatch;
use crate::{Error, Result};

/// How an epoch is cut into minibatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceBatching {
    /// Most tokens per minibatch (a sequence counts the steps of its longest stream); a
    /// longer sequence goes alone.
    pub tokens: usize,
    /// Sort sequences by length before cutting (within each epoch's shuffle), then shuffle
    /// the minibatches' order.
    pub bucket: bool,
    /// Each stream is padded to its longest sequence rounded up to a multiple of this, so
    /// that minibatches share plans.
    pub pad_multiple: usize,
}

/// One minibatch: every stream packed, and how many sequences and tokens it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceMinibatch {
    /// One packed batch per stream, in the data's stream order.
    pub streams: Vec<SequenceBatch>,
    /// The data's indices of its sequences.
    pub indices: Vec<usize>,
    /// Σ over its sequences of their longest stream's steps.
    pub tokens: usize,
}

/// Yields the minibatches of one epoch; drop it to stop the prefetch thread early.
pub struct SequenceSource {
    rx: Option<Receiver<Result<SequenceMinibatch>>>,
    worker: Option<JoinHandle<()>>,
}

/// The steps of a sequence's longest stream.
fn tokens_of(data: &CtfSequences, k: usize) -> usize {
    (0..data.specs.len())
        .map(|s| data.steps(k, s))
        .max()
        .unwrap_or(0)
}

/// The epoch's minibatches as lists of sequence indices.
fn cut(
    data: &CtfSequences,
    how: SequenceBatching,
    seed: Option<u64>,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..data.sequences.len()).collect();
    let mut rng =
        seed.map(|s| StdRng::seed_from_u64(s ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    if let Some(r) = rng.as_mut() {
        order.shuffle(r);
    }
    if how.bucket {
        order.sort_by_key(|&k| tokens_of(data, k));
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut used = 0;
    for k in order {
        let t = tokens_of(data, k);
        if !current.is_empty() && used + t > how.tokens {
            batches.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(k);
        used += t;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    if let (true, Some(r)) = (how.bucket, rng.as_mut()) {
        batches.shuffle(r);
    }
    batches
}

/// Packs one minibatch's sequences, stream by stream.
fn pack(
    data: &CtfSequences,
    how: SequenceBatching,
    indices: Vec<usize>,
) -> Result<SequenceMinibatch> {
    let mut streams = Vec::with_capacity(data.specs.len());
    for (s, spec) in data.specs.iter().enumerate() {
        let seqs: Vec<&[f32]> = indices
            .iter()
            .map(|&k| &data.sequences[k].streams[s][..])
            .collect();
        if let Some(j) = seqs.iter().position(|v| v.is_empty()) {
            return Err(Error::Invalid(format!(
                "SequenceSource: sequence {} has no steps in stream {}",
                data.sequences[indices[j]].id, spec.name
            )));
        }
        let longest = indices.iter().map(|&k| data.steps(k, s)).max().unwrap_or(1);
        let m = how.pad_multiple.max(1);
        streams.push(SequenceBatch::pack_to(
            &seqs,
            spec.dim,
            longest.div_ceil(m) * m,
        )?);
    }
    let tokens = indices.iter().map(|&k| tokens_of(data, k)).sum();
    Ok(SequenceMinibatch {
        streams,
        indices,
        tokens,
    })
}

impl SequenceSource {
    /// The minibatches of epoch `epoch` (0-based) of `data`, cut as `how` says: shuffled
    /// from `seed` and `epoch` (in order, or sorted when bucketing, when `seed` is `None`),
    /// with up to `prefetch` minibatches packed ahead on another thread. A sequence missing
    /// a stream is an error in the minibatch that holds it.
    pub fn epoch(
        data: Arc<CtfSequences>,
        how: SequenceBatching,
        seed: Option<u64>,
        epoch: u64,
        prefetch: usize,
    ) -> Result<SequenceSource> {
        if how.tokens == 0 {
            return Err(Error::Invalid("SequenceSource: a token budget of 0".into()));
        }
        let (tx, rx) = sync_channel(prefetch.max(1));
        let worker = std::thread::spawn(move || {
            for indices in cut(&data, how, seed, epoch) {
                if tx.send(pack(&data, how, indices)).is_err() {
                    return; // the consumer went away
                }
            }
        });
        Ok(SequenceSource {
            rx: Some(rx),
            worker: Some(worker),
        })
    }
}

impl Iterator for SequenceSource {
    type Item = Result<SequenceMinibatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for SequenceSource {
    fn drop(&mut self) {
        self.rx.take(); // unblocks the worker's send
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
