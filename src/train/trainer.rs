//! [`Trainer`]: CNTK's Trainer for wgrad — a model's loss and metric, a learner, and
//! `train_minibatch` / `test_minibatch`.

use crate::device::Context;
use crate::executor::{Executor, Feed, Pass, Readback};
use crate::graph::{Graph, NodeId};
use crate::optim::Learner;
use crate::Result;

use super::data_parallel::DataParallel;

/// Mean loss and metric of one minibatch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinibatchStats {
    /// Mean loss over the minibatch (before the update).
    pub loss: f32,
    /// Mean metric over the minibatch, when the trainer has one.
    pub metric: Option<f32>,
}

/// Trains the parameters of a graph with a learner.
///
/// `loss` and `metric` may be per-sample (e.g. `[batch]`), per token of sequences
/// (`[batch, seq]`, averaged over the valid steps) or scalars; the trainer averages them over
/// the minibatch and differentiates the mean loss. It reads back the per-sample
/// values and averages them on the host (a few hundred bytes, and no reduction dispatches).
pub struct Trainer {
    pub(crate) exec: Executor,
    pub(crate) loss: NodeId,
    pub(crate) metric: Option<NodeId>,
    pub(crate) learner: Learner,
    pub(crate) minibatches: u64,
    /// The learner's running sample count (FSAdaGrad's variance normaliser).
    pub(crate) smoothed_count: f64,
    /// The loss is per token of sequences on this axis: a sample is a step.
    pub(crate) per_token: Option<u8>,
    /// Data-parallel training: the other ranks and the all-reduced gradients' inputs.
    pub(crate) parallel: Option<DataParallel>,
    /// A data-parallel step's statistics not yet returned by the pipelined calls.
    pub(crate) pending: Option<MinibatchStats>,
}

/// What the trainer reports: the mean loss and metric nodes (per sample or per token).
pub(crate) struct Reported {
    pub(crate) loss: NodeId,
    pub(crate) metric: Option<NodeId>,
    pub(crate) per_token: Option<u8>,
}

/// A model made ready for training: what it reports, its parameters and their gradients.
pub(crate) struct Model {
    pub(crate) reported: Reported,
    /// The per-sample loss (the mean over tokens for sequences).
    pub(crate) loss: NodeId,
    pub(crate) params: Vec<NodeId>,
    pub(crate) grads: Vec<NodeId>,
}

impl Model {
    /// Checks the ids, averages per-token losses and metrics over the valid steps, and adds
    /// the gradients of the mean loss for every parameter of `graph`.
    pub(crate) fn prepare(graph: &Graph, loss: NodeId, metric: Option<NodeId>) -> Result<Model> {
        graph.check("Trainer::new (loss)", loss)?;
        if let Some(m) = metric {
            graph.check("Trainer::new (metric)", m)?;
        }
        // Per-token losses and metrics of sequences average over the valid steps.
        let token_mean = |x: NodeId| -> Result<NodeId> {
            match graph.shape(x).has_seq() {
                true => graph.sequence_token_mean(x),
                false => Ok(x),
            }
        };
        let per_token = graph.shape(loss).seq_axis();
        let (loss, metric) = (token_mean(loss)?, metric.map(token_mean).transpose()?);
        let params = graph.parameters();
        let grads = graph.grad(graph.reduce_mean(loss, &[])?, &params)?;
        Ok(Model {
            reported: Reported {
                loss,
                metric,
                per_token,
            },
            loss,
            params,
            grads,
        })
    }
}

/// The gradient clipping factor `min(1, c / ‖g‖)` over every gradient (‖g‖ their global L2
/// norm), or a constant 1 when the learner does not clip.
pub(crate) fn clip_factor(graph: &Graph, grads: &[NodeId], learner: &Learner) -> Result<NodeId> {
    Ok(match learner.clip_norm {
        None => graph.scalar(1.0),
        Some(c) => {
            let mut total = graph.scalar(0.0);
            for &gr in grads {
                total = graph.add(total, graph.reduce_sum(graph.mul(gr, gr)?, &[])?)?;
            }
            let norm = graph.add(graph.sqrt(total)?, graph.scalar(1e-12))?;
            graph.minimum(graph.scalar(1.0), graph.div(graph.scalar(c), norm)?)?
        }
    })
}

impl Trainer {
    /// Adds the mean loss, its gradients for every parameter of `graph`, the clipping factor
    /// and the learner's updates, then initialises the parameters on the device.
    ///
    /// # Errors
    /// Ids of another graph, a loss or metric through an op with no gradient rule, and
    /// [`Executor::new`]'s errors.
    pub fn new(
        ctx: &Context,
        graph: &Graph,
        loss: NodeId,
        metric: Option<NodeId>,
        learner: Learner,
    ) -> Result<Trainer> {
        let model = Model::prepare(graph, loss, metric)?;
        let clip = clip_factor(graph, &model.grads, &learner)?;
        let mut exec = Executor::new(ctx, graph)?;
        let pairs: Vec<_> = model.params.into_iter().zip(model.grads).collect();
        exec.set_learner(learner.rule(), &pairs, clip, model.loss)?;
        Ok(Trainer::around(exec, &model.reported, learner, None))
    }

    /// The trainer of an executor whose learner is installed.
    pub(crate) fn around(
        exec: Executor,
        reported: &Reported,
        learner: Learner,
        parallel: Option<DataParallel>,
    ) -> Trainer {
        Trainer {
            exec,
            loss: reported.loss,
            metric: reported.metric,
            learner,
            minibatches: 0,
            smoothed_count: 0.0,
            per_token: reported.per_token,
            parallel,
            pending: None,
        }
    }

    /// Writes the learner's hyper-parameters for the next minibatch (`feed`'s size).
    fn set_hyper(&mut self, feed: &Feed) -> Result<()> {
        let batch = self.exec.feed_samples(&[self.loss], feed, self.per_token)?;
        let t = self.minibatches;
        let hyper = self.learner.hyper_at(t, batch, &mut self.smoothed_count);
        self.exec.set_hyper(hyper);
        Ok(())
    }

    /// Whether the trainer reports a metric besides the loss.
    pub(crate) fn has_metric(&self) -> bool {
        self.metric.is_some()
    }

    pub(crate) fn reported(&self) -> Vec<NodeId> {
        let mut v = vec![self.loss];
        v.extend(self.metric);
        v
    }

    /// One step of forward, backward and update, submitted as one command buffer. With
    /// `read`, waits for it and returns the minibatch's mean loss (and metric); otherwise
    /// returns at once with `None` and nothing is read back.
    pub fn train_minibatch(&mut self, feed: &Feed, read: bool) -> Result<Option<MinibatchStats>> {
        if self.parallel.is_some() {
            let s = self.step_data_parallel(feed)?;
            return Ok(read.then_some(s));
        }
        self.set_hyper(feed)?;
        let out = self.exec.run(&self.reported(), feed, Pass::Train, read)?;
        self.minibatches += 1;
        Ok(out.map(stats))
    }

    /// Like [`Trainer::train_minibatch`] with the loss read one step late: submits this
    /// step and returns the statistics of the previous call of this method (`None` the first
    /// time), so the host prepares the next minibatch while the device runs this one. Call
    /// [`Trainer::finish_minibatches`] for the last step's statistics.
    pub fn train_minibatch_pipelined(&mut self, feed: &Feed) -> Result<Option<MinibatchStats>> {
        if self.parallel.is_some() {
            let s = self.step_data_parallel(feed)?;
            return Ok(self.pending.replace(s));
        }
        self.set_hyper(feed)?;
        let out = self
            .exec
            .run_with(&self.reported(), feed, Pass::Train, Readback::Deferred)?;
        self.minibatches += 1;
        Ok(out.map(stats))
    }

    /// The statistics of the last [`Trainer::train_minibatch_pipelined`] step not yet
    /// returned (waits for it).
    pub fn finish_minibatches(&mut self) -> Result<Option<MinibatchStats>> {
        if self.parallel.is_some() {
            return Ok(self.pending.take());
        }
        Ok(self.exec.take_deferred()?.map(stats))
    }

    /// The mean metric on a minibatch, in evaluation mode, without training (CNTK's
    /// `test_minibatch`); the mean loss when the trainer has no metric.
    pub fn test_minibatch(&mut self, feed: &Feed) -> Result<f32> {
        let m = self.metric.unwrap_or(self.loss);
        Ok(mean(&self.exec.eval(&[m], feed)?[0]))
    }

    /// Mean loss and metric on a minibatch in evaluation mode.
    pub fn evaluate_minibatch(&mut self, feed: &Feed) -> Result<MinibatchStats> {
        Ok(stats(self.exec.eval(&self.reported(), feed)?))
    }

    /// Evaluates any nodes of the graph with the current parameters (evaluation mode).
    pub fn eval(&mut self, outputs: &[NodeId], feed: &Feed) -> Result<Vec<Vec<f32>>> {
        self.exec.eval(outputs, feed)
    }

    /// Replaces the base learning rate from the next step on (no re-planning).
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learner.lr = lr;
    }

    /// The learner's settings.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// Minibatches trained so far.
    pub fn minibatches(&self) -> u64 {
        self.minibatches
    }

    /// The executor holding the parameters (for inspection and checkpoints).
    pub fn executor(&mut self) -> &mut Executor {
        &mut self.exec
    }
}

/// Mean loss and metric from a trainer's reported (per-sample) outputs.
pub(crate) fn stats(o: Vec<Vec<f32>>) -> MinibatchStats {
    MinibatchStats {
        loss: mean(&o[0]),
        metric: o.get(1).map(|m| mean(m)),
    }
}

/// The mean of read-back values, summed in f64.
fn mean(v: &[f32]) -> f32 {
    (v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64) as f32
}
