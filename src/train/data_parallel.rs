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

use std::time::Instant;

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
        let timing = ExchangeTiming {
            floats_per_step: grads.iter().map(|g| g.2).sum(),
            ..Default::default()
        };
        let parallel = DataParallel {
            comm,
            grads,
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
        let empty = feed.iter().all(|(_, d)| d.is_empty());
        let n = match empty {
            true => 0,
            false => self.exec.feed_samples(&[self.loss], feed, self.per_token)?,
        };
        let start = self.exec.step();
        // Gradients weighted by the shard's size, then the sums of loss, metric and size.
        let mut flat = vec![0f32; p.timing.floats_per_step];
        let mut sums = [0f64; 3];
        if n > 0 {
            let reported = self.reported();
            let mut outputs = reported.clone();
            outputs.extend(p.grads.iter().map(|g| g.0));
            let mut out = self.exec.run(&outputs, feed, Pass::TrainForward, true)?;
            let out = out.take().unwrap_or_default();
            let local = stats(out[..reported.len()].to_vec());
            let mut off = 0;
            for (values, g) in out[reported.len()..].iter().zip(&p.grads) {
                for (d, v) in flat[off..off + g.2].iter_mut().zip(values) {
                    *d = v * n as f32;
                }
                off += g.2;
            }
            sums = [
                local.loss as f64 * n as f64,
                local.metric.unwrap_or(0.0) as f64 * n as f64,
                n as f64,
            ];
        }
        // The update below runs as this step.
        self.exec.set_step(start);
        let t1 = Instant::now();
        p.comm.all_reduce_f64(&mut sums, Reduction::Sum)?;
        p.comm.all_reduce_f32(&mut flat)?;
        let total = sums[2];
        if total == 0.0 {
            return Err(Error::Invalid(format!(
                "data-parallel step {}: every rank's shard of the minibatch is empty",
                self.minibatches + 1
            )));
        }
        let inv = (1.0 / total) as f32;
        flat.iter_mut().for_each(|v| *v *= inv);
        let s = MinibatchStats {
            loss: (sums[0] / total) as f32,
            metric: self.metric.map(|_| (sums[1] / total) as f32),
        };
        let t2 = Instant::now();
        let hyper =
            self.learner
                .hyper_at(self.minibatches, total as usize, &mut self.smoothed_count);
        self.exec.set_hyper(hyper);
        let mut reduced_feed = Vec::with_capacity(p.grads.len() + 1);
        let mut off = 0;
        for g in &p.grads {
            reduced_feed.push((g.1, &flat[off..off + g.2]));
            off += g.2;
        }
        let loss = [s.loss];
        reduced_feed.push((p.loss_input, &loss[..]));
        self.exec.run(&[], &reduced_feed, Pass::Train, true)?;
        self.minibatches += 1;
        let t = &mut p.timing;
        t.steps += 1;
        t.compute += t1 - t0;
        t.all_reduce += t2 - t1;
        t.update += t2.elapsed();
        Ok(s)
    }
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
