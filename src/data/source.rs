//! Minibatches over an in-memory dataset, shuffled per epoch from a seed and prepared on a
//! background thread so that the GPU does not wait for the host.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

use super::Dataset;
use crate::distributed::Shard;
use crate::{Error, Result};

/// One minibatch: each stream's rows, in the dataset's stream order.
#[derive(Clone, Debug, PartialEq)]
pub struct Minibatch {
    /// Row-major data per stream.
    pub streams: Vec<Vec<f32>>,
    /// Number of samples (the last minibatch of an epoch may be smaller).
    pub len: usize,
}

/// Yields the minibatches of one epoch; drop it to stop the prefetch thread early.
pub struct MinibatchSource {
    rx: Option<Receiver<Minibatch>>,
    worker: Option<JoinHandle<()>>,
}

impl MinibatchSource {
    /// The minibatches of epoch `epoch` (0-based) of `data`: shuffled by a permutation drawn
    /// from `seed` and `epoch` (in order when `seed` is `None`), `batch` samples each, the last
    /// one partial. Up to `prefetch` minibatches are prepared ahead on another thread. A
    /// batch size of 0 is an error.
    pub fn epoch(
        data: Arc<Dataset>,
        batch: usize,
        seed: Option<u64>,
        epoch: u64,
        prefetch: usize,
    ) -> Result<MinibatchSource> {
        MinibatchSource::sharded(data, batch, seed, epoch, prefetch, Shard::WHOLE)
    }

    /// [`MinibatchSource::epoch`] for one rank of data-parallel training: the epoch's
    /// minibatches of `batch` samples (the global minibatch: every rank's shards together),
    /// of which this rank gets part `shard` ([`Shard::rows`]). Every rank draws the same
    /// permutation and gets as many minibatches, some maybe empty (at the end of an epoch
    /// with fewer samples than ranks).
    pub fn sharded(
        data: Arc<Dataset>,
        batch: usize,
        seed: Option<u64>,
        epoch: u64,
        prefetch: usize,
        shard: Shard,
    ) -> Result<MinibatchSource> {
        if batch == 0 {
            return Err(Error::Invalid(
                "MinibatchSource: the batch size is 0".into(),
            ));
        }
        let (tx, rx) = sync_channel(prefetch.max(1));
        let worker = std::thread::spawn(move || {
            let mut order: Vec<usize> = (0..data.len()).collect();
            if let Some(s) = seed {
                let mut rng = StdRng::seed_from_u64(s ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                order.shuffle(&mut rng);
            }
            for chunk in order.chunks(batch) {
                let mine = &chunk[shard.rows(chunk.len())];
                let mb = Minibatch {
                    streams: data.gather_valid(mine),
                    len: mine.len(),
                };
                if tx.send(mb).is_err() {
                    return; // the consumer went away
                }
            }
        });
        Ok(MinibatchSource {
            rx: Some(rx),
            worker: Some(worker),
        })
    }
}

impl Iterator for MinibatchSource {
    type Item = Minibatch;
    fn next(&mut self) -> Option<Minibatch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for MinibatchSource {
    fn drop(&mut self) {
        self.rx.take(); // unblocks the worker's send
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
