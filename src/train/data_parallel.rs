//! Data-parallel training steps ([`Trainer::data_parallel`]): each rank runs forward and
//! backward on its shard of the minibatch and reads its gradients back; the ranks all-reduce
//! them, weighted by their shards' sizes, into the gradient of the whole minibatch's mean
//! loss; every rank feeds that average to the learner's update, so the parameters stay the
//! same on every rank.
//!
//! The update is the same plan as a one-process trainer's, except that its gradients (and
//! the loss the numerics guard looks at) are inputs of the graph fed with the all-reduced
//! values: gradient clipping sees the global norm and a non-finite value on any rank stops
//! the update on every rank.

use std::time::{Duration, Instant};

use super::trainer::{clip_factor, stats, MinibatchStats, Model, Trainer};
use crate::device::Context;
use crate::distributed::{
    hash_bits, same_on_every_rank, Communicator, DataParallelOptions, ExchangeTiming, Reduction,
    Shard, HASH_START,
};
use crate::executor::{Executor, Feed, Pass};
use crate::graph::{Graph, NodeId};
use crate::optim::Learner;
use crate::shape::Shape;
use crate::{Error, Result};

/// A trainer's link to the other ranks.
pub(crate) struct DataParallel {
    comm: Box<dyn Communicator>,
    /// Per parameter: its computed gradient, the input fed the all-reduced one, elements.
    grads: Vec<(NodeId, NodeId, usize)>,
    /// The gradients (indices into `grads`) of each bucket, in the order they are reduced.
    buckets: Vec<Vec<usize>>,
    /// Where each gradient lies in the flat buffer that is all-reduced (bucket by bucket).
    offsets: Vec<usize>,
    /// The input fed the minibatch's mean loss (for the numerics guard).
    loss_input: NodeId,
    options: DataParallelOptions,
    timing: ExchangeTiming,
}

impl Trainer {
    /// A trainer for data-parallel training over `comm` (e.g. MPI's world, feature `mpi`):
    /// see [`crate::distributed`]. Every rank builds the same graph and calls this; rank 0's
    /// initial parameters are broadcast to the others.
    ///
    /// Each step, a rank trains on its shard of the minibatch (what it feeds), and every rank
    /// applies the update of the whole minibatch's mean gradient: `N` ranks fed `B` samples
    /// each step like one process fed the `N·B` together (up to float rounding). Dropout
    /// masks differ, being drawn per shard. Graphs that update running statistics
    /// (batch normalisation) are refused: each rank's would drift apart.
    ///
    /// # Errors
    /// Those of [`Trainer::new`], graphs with running statistics, ranks whose models differ
    /// (names or shapes of their parameters), and the communicator's errors.
    pub fn data_parallel(
        ctx: &Context,
        graph: &Graph,
        loss: NodeId,
        metric: Option<NodeId>,
        learner: Learner,
        comm: impl Communicator + 'static,
    ) -> Result<Trainer> {
        let options = DataParallelOptions::default();
        Trainer::data_parallel_with(ctx, graph, loss, metric, learner, Box::new(comm), options)
    }

    /// [`Trainer::data_parallel`] with options.
    pub fn data_parallel_with(
        ctx: &Context,
        graph: &Graph,
        loss: NodeId,
        metric: Option<NodeId>,
        learner: Learner,
        comm: Box<dyn Communicator>,
        options: DataParallelOptions,
    ) -> Result<Trainer> {
        if !graph.assignments().is_empty() {
            return Err(Error::Invalid(
                "Trainer::data_parallel: the graph updates running statistics (batch \
                 normalisation); they would differ between ranks, which is not supported"
                    .into(),
            ));
        }
        let model = Model::prepare(graph, loss, metric)?;
        if model.params.is_empty() {
            return Err(Error::Invalid(
                "Trainer::data_parallel: the graph has no parameters to train".into(),
            ));
        }
        let mut grads = Vec::with_capacity(model.params.len());
        let mut reduced = Vec::with_capacity(model.params.len());
        for (&p, &g) in model.params.iter().zip(&model.grads) {
            let dims = graph.shape(p).resolve(1);
            let name = graph.name(p).unwrap_or_else(|| format!("node {}", p.0));
            let input = graph.input_with_shape(
                &format!("all-reduced gradient of {name}"),
                Shape::fixed(&dims),
            )?;
            grads.push((g, input, dims.iter().product()));
            reduced.push(input);
        }
        let clip = clip_factor(graph, &reduced, &learner)?;
        let loss_input = graph.input_with_shape("all-reduced loss", Shape::fixed(&[1]))?;
        let mut exec = Executor::new(ctx, graph)?;
        let pairs: Vec<_> = model.params.iter().copied().zip(reduced).collect();
        exec.set_learner(learner.rule(), &pairs, clip, loss_input)?;
        broadcast_state(&mut exec, comm.as_ref())?;
        let sizes: Vec<usize> = grads.iter().map(|g| g.2).collect();
        let buckets = buckets(&sizes, options.bucket_floats);
        let mut offsets = vec![0; grads.len()];
        let mut at = 0;
        for &i in buckets.iter().flatten() {
            offsets[i] = at;
            at += sizes[i];
        }
        let timing = ExchangeTiming {
            floats_per_step: at,
            buckets: buckets.len(),
            ..Default::default()
        };
        let parallel = DataParallel {
            comm,
            grads,
            buckets,
            offsets,
            loss_input,
            options,
            timing,
        };
        Ok(Trainer::around(
            exec,
            &model.reported,
            learner,
            Some(parallel),
        ))
    }

    /// This rank's part of every minibatch ([`Shard::WHOLE`] without data parallelism).
    pub fn shard(&self) -> Shard {
        match &self.parallel {
            Some(p) => Shard {
                rank: p.comm.rank(),
                ranks: p.comm.size(),
            },
            None => Shard::WHOLE,
        }
    }

    /// Whether this trainer prints and writes files: rank 0, or a one-process trainer.
    pub fn is_root(&self) -> bool {
        self.shard().rank == 0
    }

    /// Where the data-parallel steps spent their time (`None` for a one-process trainer).
    pub fn exchange_timing(&self) -> Option<ExchangeTiming> {
        self.parallel.as_ref().map(|p| p.timing)
    }

    /// Checks that every rank holds the same parameters and learner state, bit for bit
    /// (a hash all-reduced); a one-process trainer passes at once. Every rank must call it.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the step when they differ; the communicator's errors.
    pub fn check_replicas(&mut self) -> Result<()> {
        let Some(p) = &self.parallel else {
            return Ok(());
        };
        let mut hash = HASH_START;
        for (_, _, data) in self.exec.export_state()? {
            hash_bits(&mut hash, &data);
        }
        if !same_on_every_rank(p.comm.as_ref(), hash)? {
            return Err(Error::Invalid(format!(
                "data-parallel training: after minibatch {} the parameters differ between \
                 the {} ranks (seen on rank {})",
                self.minibatches,
                p.comm.size(),
                p.comm.rank()
            )));
        }
        Ok(())
    }

    /// Sums `values` over the ranks (nothing to do for a one-process trainer).
    pub(crate) fn all_reduce_sums(&self, values: &mut [f64]) -> Result<()> {
        match &self.parallel {
            Some(p) => p.comm.all_reduce_f64(values, Reduction::Sum),
            None => Ok(()),
        }
    }

    /// One data-parallel step on this rank's shard `feed` (which may be empty); returns the
    /// whole minibatch's mean loss and metric.
    pub(crate) fn step_data_parallel(&mut self, feed: &Feed) -> Result<MinibatchStats> {
        let mut p = self.parallel.take().expect("a data-parallel trainer");
        let result = self.exchange_and_update(&mut p, feed);
        self.parallel = Some(p);
        let s = result?;
        let every = self.parallel.as_ref().map_or(0, |p| p.options.check_every);
        if every > 0 && self.minibatches.is_multiple_of(every) {
            self.check_replicas()?;
        }
        Ok(s)
    }

    fn exchange_and_update(&mut self, p: &mut DataParallel, feed: &Feed) -> Result<MinibatchStats> {
        let t0 = Instant::now();
        let (flat, sums, reducing) = self.gradients_all_reduced(p, feed)?;
        let total = sums[2];
        if total == 0.0 {
            return Err(Error::Invalid(format!(
                "data-parallel step {}: every rank's shard of the minibatch is empty",
                self.minibatches + 1
            )));
        }
        let s = MinibatchStats {
            loss: (sums[0] / total) as f32,
            metric: self.metric.map(|_| (sums[1] / total) as f32),
        };
        let t1 = Instant::now();
        let hyper =
            self.learner
                .hyper_at(self.minibatches, total as usize, &mut self.smoothed_count);
        self.exec.set_hyper(hyper);
        let mut reduced_feed = Vec::with_capacity(p.grads.len() + 1);
        for (g, &at) in p.grads.iter().zip(&p.offsets) {
            reduced_feed.push((g.1, &flat[at..at + g.2]));
        }
        let loss = [s.loss];
        reduced_feed.push((p.loss_input, &loss[..]));
        self.exec.run(&[], &reduced_feed, Pass::Train, true)?;
        self.minibatches += 1;
        let t = &mut p.timing;
        t.steps += 1;
        t.exchange += t1 - t0;
        t.all_reduce += reducing;
        t.update += t1.elapsed();
        Ok(s)
    }

    /// Forward and backward on this rank's shard, and the all-reduce of every bucket of
    /// gradients (each weighted by the shard's samples) and of the sums of loss, metric and
    /// samples. Returns the averaged gradients (bucket by bucket, as `p.offsets` says), the
    /// sums, and the time spent in all-reduces.
    fn gradients_all_reduced(
        &mut self,
        p: &DataParallel,
        feed: &Feed,
    ) -> Result<(Vec<f32>, [f64; 3], Duration)> {
        let n = match feed.iter().all(|(_, d)| d.is_empty()) {
            true => 0,
            false => self.exec.feed_samples(&[self.loss], feed, self.per_token)?,
        };
        let mut flat = vec![0f32; p.timing.floats_per_step];
        let mut sums = [0f64; 3];
        let mut reducing = Duration::ZERO;
        let comm = p.comm.as_ref();
        let mut reduce_bucket = |k: usize, flat: &mut [f32]| -> Result<()> {
            let from = p.offsets[p.buckets[k][0]];
            let len: usize = p.buckets[k].iter().map(|&i| p.grads[i].2).sum();
            let t = Instant::now();
            comm.all_reduce_f32(&mut flat[from..from + len])?;
            reducing += t.elapsed();
            Ok(())
        };
        if n == 0 {
            // Nothing to compute here, but every bucket's all-reduce to take part in.
            for k in 0..p.buckets.len() {
                reduce_bucket(k, &mut flat)?;
            }
        } else {
            let start = self.exec.step();
            let reported = self.reported();
            let r = reported.len();
            let mut outputs = reported;
            outputs.extend(p.grads.iter().map(|g| g.0));
            // Group 0 also reads the loss and metric back.
            let mut groups: Vec<Vec<usize>> = p
                .buckets
                .iter()
                .map(|b| b.iter().map(|&i| r + i).collect())
                .collect();
            groups[0].splice(0..0, 0..r);
            let mut take = |k: usize, mut values: Vec<Vec<f32>>| -> Result<()> {
                if k == 0 {
                    let local = stats(values.drain(..r).collect());
                    sums = [
                        local.loss as f64 * n as f64,
                        local.metric.unwrap_or(0.0) as f64 * n as f64,
                        n as f64,
                    ];
                }
                for (&i, v) in p.buckets[k].iter().zip(&values) {
                    let at = p.offsets[i];
                    for (d, x) in flat[at..at + v.len()].iter_mut().zip(v) {
                        *d = x * n as f32;
                    }
                }
                reduce_bucket(k, &mut flat)
            };
            if p.options.overlap {
                self.exec
                    .run_overlapped(&outputs, feed, &groups, &mut take)?;
            } else {
                let out = self.exec.run(&outputs, feed, Pass::TrainForward, true)?;
                let mut out = out.unwrap_or_default();
                for (k, g) in groups.iter().enumerate() {
                    take(k, g.iter().map(|&o| std::mem::take(&mut out[o])).collect())?;
                }
            }
            // The update runs as this step.
            self.exec.set_step(start);
        }
        let t = Instant::now();
        comm.all_reduce_f64(&mut sums, Reduction::Sum)?;
        reducing += t.elapsed();
        let inv = (1.0 / sums[2].max(1.0)) as f32;
        flat.iter_mut().for_each(|v| *v *= inv);
        Ok((flat, sums, reducing))
    }
}

/// Buckets of gradients of `sizes` floats: in reverse order (the backward pass makes the
/// last parameters' gradients first), each gradient joining the current bucket while the
/// bucket stays within `floats`.
fn buckets(sizes: &[usize], floats: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut filled = 0;
    for i in (0..sizes.len()).rev() {
        match out.last_mut() {
            Some(b) if filled + sizes[i] <= floats => {
                b.push(i);
                filled += sizes[i];
            }
            _ => {
                out.push(vec![i]);
                filled = sizes[i];
            }
        }
    }
    out
}

/// Gives every rank rank 0's parameters and learner state, after checking that the ranks'
/// models have the same tensors.
fn broadcast_state(exec: &mut Executor, comm: &dyn Communicator) -> Result<()> {
    let mut state = exec.export_state()?;
    let mut layout = HASH_START;
    for (name, shape, _) in &state {
        let dims: Vec<f32> = shape.iter().map(|&d| d as f32).collect();
        hash_bits(&mut layout, &dims);
        let bytes: Vec<f32> = name.bytes().map(|b| b as f32).collect();
        hash_bits(&mut layout, &bytes);
    }
    if !same_on_every_rank(comm, layout)? {
        return Err(Error::Invalid(format!(
            "Trainer::data_parallel: the ranks' models differ (the names or shapes of their \
             {} parameter and learner tensors); rank {} of {}",
            state.len(),
            comm.rank(),
            comm.size()
        )));
    }
    for (_, _, data) in &mut state {
        comm.broadcast_f32(data, 0)?;
    }
    exec.import_state(&state)
}

#[cfg(test)]
mod tests {
    use super::buckets;

    #[test]
    fn buckets_take_gradients_in_reverse_up_to_the_size() {
        assert_eq!(
            buckets(&[200, 8, 3200, 16, 7840, 10], 4096),
            vec![vec![5], vec![4], vec![3, 2, 1, 0]]
        );
        assert_eq!(buckets(&[5, 5], 100), vec![vec![1, 0]]);
        assert_eq!(buckets(&[500], 100), vec![vec![0]]);
        assert!(buckets(&[], 100).is_empty());
    }
}
