//! Data-parallel training: every rank (process) holds the whole model, computes the
//! gradients of its shard of each minibatch, and all ranks apply the same update to the
//! average of their gradients (CNTK's `data_parallel_distributed_learner`, PyTorch's DDP).
//!
//! The ranks talk through a [`Communicator`]. With the `mpi` feature, `mpi::MpiWorld` is
//! OpenMPI (or any MPI) through the `mpi` crate, started by `mpirun`; [`SingleProcess`] is
//! the one-rank group a program gets without it. [`Trainer::data_parallel`] makes a trainer
//! over a communicator, and [`Trainer::fit`] then shards every epoch by rank, reduces the
//! evaluation across ranks, and prints and writes checkpoints on rank 0 only.
//!
//! ```no_run
//! # #[cfg(feature = "mpi")]
//! # fn main() {
//! use wgrad::distributed::mpi;
//! // `mpirun -np 2 ./train`: each rank runs this; an error or a panic on any rank
//! // stops every rank (MPI_Abort) instead of leaving the others waiting.
//! mpi::run(|world| {
//!     let ctx = wgrad::Context::new()?;
//!     // ... build the graph, then
//!     // let mut trainer = Trainer::data_parallel(&ctx, &g, loss, Some(err), learner, world)?;
//!     // trainer.fit(&train, Some(&test), &inputs, &opts)?;
//!     Ok(())
//! });
//! # }
//! # #[cfg(not(feature = "mpi"))]
//! # fn main() {}
//! ```
//!
//! [`Trainer::data_parallel`]: crate::Trainer::data_parallel
//! [`Trainer::fit`]: crate::Trainer::fit

#[cfg(feature = "mpi")]
pub mod mpi;

use crate::Result;

/// How an all-reduce combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// The sum over ranks.
    Sum,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

/// A group of ranks that can all-reduce and broadcast. Every rank must make the same calls
/// in the same order with buffers of the same length (MPI's rule for collectives).
pub trait Communicator: Send {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank by their element-wise sum over the ranks.
    fn all_reduce_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` on every rank by their element-wise reduction over the ranks.
    fn all_reduce_f64(&self, values: &mut [f64], op: Reduction) -> Result<()>;
    /// Replaces `values` on every rank by rank `root`'s.
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()>;
    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Whether this is rank 0, the one that prints and writes files.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
}

/// The group of one process: every collective leaves the values as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f64(&self, _: &mut [f64], _: Reduction) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _: &mut [f32], _: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// Which part of every minibatch a rank trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This rank.
    pub rank: usize,
    /// The number of ranks.
    pub ranks: usize,
}

impl Shard {
    /// The whole minibatch (one rank).
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1 };

    /// The rows `[start, end)` of a global minibatch of `rows` this rank takes: consecutive
    /// and as even as possible, so `batch · ranks` rows give each rank `batch`.
    pub fn rows(self, rows: usize) -> std::ops::Range<usize> {
        let part = |r: usize| r * rows / self.ranks.max(1);
        part(self.rank)..part(self.rank + 1)
    }
}

/// Per-step options of data-parallel training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataParallelOptions {
    /// Check every this many steps that the parameters are identical on every rank (a hash
    /// of their bits, all-reduced); 0 never checks (call
    /// [`Trainer::check_replicas`](crate::Trainer::check_replicas) by hand).
    pub check_every: u64,
    /// Gradients are all-reduced in buckets of about this many floats (one parameter's
    /// gradient is never split), taken in reverse parameter order as the backward pass makes
    /// them (PyTorch DDP's buckets).
    pub bucket_floats: usize,
    /// All-reduce each bucket as soon as the backward pass has made it, while the device
    /// computes the others; `false` reads every gradient back first.
    pub overlap: bool,
}

impl Default for DataParallelOptions {
    fn default() -> Self {
        DataParallelOptions {
            check_every: 100,
            bucket_floats: 1 << 18,
            overlap: true,
        }
    }
}

/// Where the time of data-parallel steps went, summed over the steps so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExchangeTiming {
    /// Steps counted.
    pub steps: u64,
    /// From the start of each step until its last bucket was all-reduced: forward and
    /// backward on the device, reading gradients back, and the all-reduces (some of them
    /// while the device still ran, with `overlap`).
    pub exchange: std::time::Duration,
    /// Time inside the all-reduces of gradients and statistics.
    pub all_reduce: std::time::Duration,
    /// Writing the averaged gradients and running the learner's update.
    pub update: std::time::Duration,
    /// Gradient values this rank sends per step (floats).
    pub floats_per_step: usize,
    /// Buckets per step.
    pub buckets: usize,
}

/// A 64-bit FNV-1a hash of values' bits: equal values, equal hash.
pub(crate) fn hash_bits(hash: &mut u64, values: &[f32]) {
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            *hash ^= b as u64;
            *hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The FNV-1a offset basis.
pub(crate) const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Whether `hash` is the same on every rank: its four 16-bit parts, as f64 (exact),
/// all-reduced by min and by max.
pub(crate) fn same_on_every_rank(comm: &dyn Communicator, hash: u64) -> Result<bool> {
    let parts: Vec<f64> = (0..4)
        .map(|k| ((hash >> (16 * k)) & 0xffff) as f64)
        .collect();
    let (mut lo, mut hi) = (parts.clone(), parts);
    comm.all_reduce_f64(&mut lo, Reduction::Min)?;
    comm.all_reduce_f64(&mut hi, Reduction::Max)?;
    Ok(lo == hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_row_once() {
        for rows in [0, 1, 5, 64, 65] {
            for ranks in 1..5 {
                let mut next = 0;
                for rank in 0..ranks {
                    let r = Shard { rank, ranks }.rows(rows);
                    assert_eq!(r.start, next, "rows {rows} ranks {ranks}");
                    next = r.end;
                }
                assert_eq!(next, rows);
            }
        }
        assert_eq!(Shard { rank: 1, ranks: 2 }.rows(64), 32..64);
    }

    #[test]
    fn the_hash_sees_one_bit() {
        let (mut a, mut b) = (HASH_START, HASH_START);
        hash_bits(&mut a, &[1.0, 2.0]);
        hash_bits(&mut b, &[1.0, f32::from_bits(2.0f32.to_bits() ^ 1)]);
        assert_ne!(a, b);
        assert!(same_on_every_rank(&SingleProcess, a).unwrap());
    }
}
