//! The executor: owns the device state of one graph (parameters, constants, learner state)
//! and runs plans. Each call writes the fed inputs, records every dispatch into one command
//! encoder, submits once, and reads back only what was asked for.
//!
//! ```
//! use wgrad::{Context, Executor, Graph};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let g = Graph::new();
//! let x = g.input("x", &[3])?; // [batch, 3]
//! let w = g.parameter_from("w", &[3, 1], &[1.0, 2.0, 3.0])?;
//! let y = g.tanh(g.matmul(x, w)?)?;
//! let mut exec = Executor::new(&ctx, &g)?;
//! // A batch of two rows: the batch size comes from the feed.
//! let out = exec.eval(&[y], &[(x, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.1][..])])?;
//! assert_eq!(out[0].len(), 2);
//! // A wrong feed is an error naming the input and both sizes, never a wrong number.
//! assert!(exec.eval(&[y], &[(x, &[1.0, 2.0][..])]).is_err());
//! # Ok(()) }
//! ```

mod arenas;
mod feed;
mod guard;
mod inspect;
mod overlap;
mod plan_cache;
mod state;

use std::collections::HashMap;

use crate::device::{Buffer, Context};
use crate::graph::{AxisInfo, Graph, Init, Node, NodeId, Op};
use crate::plan::{self, ArenaUpdate, Extras};
use crate::shape::Sizes;
use crate::tensor::{Fill, Tensor};
use crate::{Error, Result};

/// A named tensor on the host: (name, shape, row-major data).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Values fed to input variables: `(input node, row-major data)` pairs.
pub type Feed<'a> = [(NodeId, &'a [f32])];

/// What one call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pass {
    /// Evaluation mode: dropout off, running statistics.
    Eval,
    /// Training mode (dropout on, batch statistics) without any update.
    TrainForward,
    /// Training mode, then the learner's updates and the state assignments.
    Train,
}

/// When a call's outputs are read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readback {
    /// Not at all.
    None,
    /// Before the call returns.
    Now,
    /// By the next deferred call (or [`Executor::take_deferred`]).
    Deferred,
}

/// A plan is specific to its outputs, its pass and the feed's sizes.
pub(crate) type PlanKey = (Vec<NodeId>, Pass, Sizes);

/// Runs a graph on a [`Context`]; see the module docs.
pub struct Executor {
    ctx: Context,
    nodes: Vec<Node>,
    /// The graph's sequence axes when the executor was made.
    axes: Vec<AxisInfo>,
    persistent: HashMap<NodeId, Tensor>,
    arenas: Vec<ParamArena>,
    plans: plan_cache::PlanCache,
    learner: Option<LearnerState>,
    assigns: Vec<(NodeId, NodeId)>,
    /// Per-call uniform: the training step (salts dropout masks).
    runtime: Buffer,
    step: u64,
    /// Host time spent writing inputs, encoding and submitting in the last call.
    last_encode: std::time::Duration,
    /// The deferred call not read yet.
    pending: Option<Pending>,
    /// Where the per-op numerics check records the first bad node
    /// (`ContextOptions::check_numerics`).
    numerics: Option<Buffer>,
    /// The tag of the graph's ids: ids of other graphs are errors.
    tag: crate::graph::GraphTag,
    /// The last step the numerics guard reported (0: none).
    guard_reported: std::cell::Cell<u64>,
}

/// A deferred call's outputs, copied into a staging buffer by a submission not waited for.
struct Pending {
    staging: Buffer,
    /// Which of the plan's staging buffers (1 or 2).
    slot: usize,
    lens: Vec<usize>,
    index: wgpu::SubmissionIndex,
    /// A training step: its last output is the numerics guard.
    guarded: bool,
    /// The step it ran as.
    step: u64,
}

impl Executor {
    /// Takes a snapshot of `graph` (nodes added later are not seen) and initialises its
    /// parameters and constants on the device.
    ///
    /// # Errors
    /// An id of another graph, a parameter too large for the adapter
    /// ([`Error::TooLarge`]) or a device error
    /// ([`Error::Gpu`]).
    pub fn new(ctx: &Context, graph: &Graph) -> Result<Executor> {
        let nodes = graph.nodes().clone();
        let axes = graph.sequence_axes();
        let arenas = param_arenas(ctx, &nodes)?;
        let mut persistent = HashMap::new();
        for a in &arenas {
            for &(id, offset, _) in &a.members {
                let t = Tensor::view(&a.buffer, offset, &nodes[id.0].shape.resolve(1));
                persistent.insert(id, t);
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            let dims = node.shape.resolve(1);
            let fill = match &node.op {
                Op::Param {
                    init: init @ (Init::Given | Init::Orthogonal { .. }),
                    seed,
                    ..
                } => {
                    let values = match *init {
                        Init::Orthogonal { gain } => orthogonal(&dims, *seed, gain),
                        _ => {
                            let Some(v) = graph.given_values(NodeId::at(i)) else {
                                return Err(Error::Invalid(format!(
                                    "parameter {}: Init::Given needs values: make it with \
                                     Graph::parameter_from",
                                    match &node.op {
                                        Op::Param { name, .. } => name.as_str(),
                                        _ => "?",
                                    }
                                )));
                            };
                            v.to_vec()
                        }
                    };
                    let t = match persistent.entry(NodeId::at(i)) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(Tensor::empty(ctx, &dims)?)
                        }
                    };
                    t.write(ctx, &values)?;
                    continue;
                }
                Op::Param { init, seed, .. } => init_fill(*init, &dims, *seed),
                Op::Const { value } => Fill::Const(*value),
                _ => continue,
            };
            match persistent.get(&NodeId::at(i)) {
                Some(t) => t.fill(ctx, fill)?,
                None => {
                    persistent.insert(NodeId::at(i), Tensor::filled(ctx, &dims, fill)?);
                }
            }
        }
        let runtime = ctx.buffer(
            "runtime",
            16,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        let numerics = match ctx.options.check_numerics {
            true => Some(ctx.storage_bytes("numerics check", 16)?),
            false => None,
        };
        Ok(Executor {
            numerics,
            tag: graph.tag(),
            guard_reported: std::cell::Cell::new(0),
            ctx: ctx.clone(),
            nodes,
            axes,
            persistent,
            arenas,
            plans: plan_cache::PlanCache::new(),
            learner: None,
            assigns: graph.assignments(),
            runtime,
            step: 0,
            last_encode: std::time::Duration::ZERO,
            pending: None,
        })
    }

    /// The context this executor runs on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Computes `outputs` from `feed` and reads them back, one `Vec` per output.
    ///
    /// # Errors
    /// [`Error::Feed`] naming the input when one is missing, fed twice,
    /// of the wrong length, of another batch size than the others, or (for one-hot and
    /// embedding indices) out of range; [`Error::TooLarge`] when the
    /// batch needs more memory than one binding allows; [`Error::Gpu`]
    /// for a device error or a lost device.
    pub fn eval(&mut self, outputs: &[NodeId], feed: &Feed) -> Result<Vec<Vec<f32>>> {
        self.run(outputs, feed, Pass::Eval, true)
            .map(|o| o.unwrap_or_default())
    }

    /// Like [`Executor::eval`] but in training mode (dropout active, batch statistics),
    /// without updating anything. Each call counts as a step for dropout masks.
    pub fn eval_training(&mut self, outputs: &[NodeId], feed: &Feed) -> Result<Vec<Vec<f32>>> {
        self.run(outputs, feed, Pass::TrainForward, true)
            .map(|o| o.unwrap_or_default())
    }

    /// Computes `outputs` from `feed` without reading anything back: submits and returns.
    /// Pair with [`Context::wait`] to time the device.
    pub fn launch(&mut self, outputs: &[NodeId], feed: &Feed) -> Result<()> {
        self.run(outputs, feed, Pass::Eval, false).map(|_| ())
    }

    /// Runs one plan: the nodes needed for `outputs` and what the pass adds. Reads
    /// `outputs` back only when `read` is set.
    pub(crate) fn run(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        pass: Pass,
        read: bool,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let read = if read { Readback::Now } else { Readback::None };
        self.run_with(outputs, feed, pass, read)
    }

    /// [`Executor::run`] with a choice of readback. With [`Readback::Deferred`] the call
    /// returns the outputs of the previous deferred call (`None` for the first), so the
    /// host prepares the next step while the device runs this one.
    pub(crate) fn run_with(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        pass: Pass,
        read: Readback,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let (key, t_encode) = self.begin_call(outputs, feed, pass, read == Readback::Deferred)?;
        let plan = self.plans.get(&key).expect("planned");
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        plan::record(&plan.steps, &plan.loops, &mut enc);
        // Immediate reads use staging buffer 0; deferred ones alternate between 1 and 2, so
        // a pending result is never overwritten before it is read.
        let slot = match read {
            Readback::Deferred => 1 + (self.pending.as_ref().is_some_and(|p| p.slot == 1) as usize),
            _ => 0,
        };
        let staging = plan.staging.get(slot).filter(|_| read != Readback::None);
        if let Some(staging) = staging {
            let mut off = 0u64;
            for (buf, from, len) in &plan.outputs {
                enc.copy_buffer_to_buffer(buf, *from, staging, off, (*len * 4) as u64);
                off += (*len * 4) as u64;
            }
        }
        let index = self.ctx.submit(enc.finish());
        self.last_encode = t_encode.elapsed();
        self.check_numerics()?;
        let guarded = pass == Pass::Train;
        match (read, staging) {
            (Readback::Now, Some(staging)) => {
                let lens: Vec<usize> = plan.outputs.iter().map(|o| o.2).collect();
                let out = self.read_staging(staging, &lens, None)?;
                self.guarded(out, guarded, self.step).map(Some)
            }
            (Readback::Deferred, Some(staging)) => {
                // Read the previous deferred step (waiting for it alone) while this one runs.
                let lens = plan.outputs.iter().map(|o| o.2).collect();
                let previous = self.pending.replace(Pending {
                    staging: staging.clone(),
                    slot,
                    lens,
                    index,
                    guarded,
                    step: self.step,
                });
                match previous {
                    Some(p) => {
                        let out = self.read_staging(&p.staging, &p.lens, Some(p.index))?;
                        self.guarded(out, p.guarded, p.step).map(Some)
                    }
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// Starts a call: checks the device, finds or builds the plan, writes the fed inputs,
    /// advances the training step and clears the numerics check. Returns the plan's key and
    /// when the plan was ready (the encoding time starts there).
    fn begin_call(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        pass: Pass,
        deferred: bool,
    ) -> Result<(PlanKey, std::time::Instant)> {
        // A device error since the last call, or a lost device, fails here first.
        self.ctx.check(match pass {
            Pass::Train => "training step",
            _ => "evaluation",
        })?;
        let key = self.ensure_plan(outputs, feed, pass, deferred)?;
        let t_encode = std::time::Instant::now();
        self.plans.touch(&key);
        let plan = self.plans.get(&key).expect("planned");
        debug_assert_eq!(plan.sizes, key.2);
        for (id, buf, len) in &plan.inputs {
            let data = feed.iter().find(|(f, _)| f == id).map(|(_, d)| *d).unwrap();
            debug_assert_eq!(data.len(), *len);
            self.ctx
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(data));
        }
        if pass != Pass::Eval {
            self.step += 1;
            let step = [self.step as u32, (self.step >> 32) as u32, 0, 0];
            self.ctx
                .queue
                .write_buffer(&self.runtime, 0, bytemuck::cast_slice(&step));
        }
        if let Some(n) = &self.numerics {
            self.ctx
                .queue
                .write_buffer(n, 0, bytemuck::cast_slice(&[u32::MAX; 4]));
        }
        Ok((key, t_encode))
    }

    /// The key of the plan for `outputs` in `pass` at the feed's sizes, building the
    /// plan first if needed (with the deferred readback buffers when `deferred`).
    pub(super) fn ensure_plan(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        pass: Pass,
        deferred: bool,
    ) -> Result<PlanKey> {
        let training = pass != Pass::Eval;
        let update = pass == Pass::Train;
        for o in outputs {
            if !o.of_graph(self.tag) {
                return Err(Error::Invalid(format!(
                    "eval: node {} belongs to another graph than this executor's",
                    o.0
                )));
            }
            if o.0 >= self.nodes.len() {
                return Err(Error::Invalid(format!(
                    "eval: node {} is not in this executor's graph (it has {} nodes; build the executor after the graph)",
                    o.0,
                    self.nodes.len()
                )));
            }
        }
        if update && self.learner.is_none() {
            return Err(Error::Invalid("train step: no learner is installed".into()));
        }
        let mut targets = outputs.to_vec();
        if update {
            let l = self.learner.as_ref().unwrap();
            targets.extend(l.params.iter().map(|p| p.1));
            targets.push(l.clip);
            targets.push(l.loss);
            targets.extend(self.assigns.iter().map(|a| a.1));
        }
        let sizes = self.sizes(&targets, feed, training)?;
        let key = (outputs.to_vec(), pass, sizes);
        if !self.plans.contains_key(&key) {
            let mut updates: Vec<ArenaUpdate> = Vec::new();
            if let (Some(l), true) = (&self.learner, update) {
                for a in &l.arenas {
                    for (offset, len, members) in &a.runs {
                        let mut targets = vec![&a.params];
                        targets.extend(a.states.iter());
                        updates.push(ArenaUpdate {
                            rule: l.rule.kind,
                            hyper: &l.hyper,
                            clip: l.clip,
                            grads: &a.grads,
                            targets,
                            offset: *offset,
                            len: *len,
                            members: members.clone(),
                            loss: l.loss,
                            guard: &l.guard,
                        });
                    }
                }
            }
            let extras = Extras {
                training,
                updates,
                assigns: if update {
                    self.assigns.clone()
                } else {
                    Vec::new()
                },
                runtime: &self.runtime,
                numerics: self.numerics.as_ref(),
            };
            let plan = plan::build(
                &self.ctx,
                &self.nodes,
                &self.persistent,
                outputs,
                &extras,
                sizes,
            )?;
            self.plans.insert(key.clone(), plan);
        }
        if deferred {
            let plan = self.plans.touch(&key).expect("planned");
            if plan.staging.len() == 1 {
                let floats = plan.outputs.iter().map(|o| o.2).sum();
                for _ in 0..2 {
                    plan.staging.push(plan::readback_buffer(&self.ctx, floats)?);
                }
            }
        }
        Ok(key)
    }

    /// The outputs of the pending deferred call, if any (waits for it).
    pub(crate) fn take_deferred(&mut self) -> Result<Option<Vec<Vec<f32>>>> {
        match self.pending.take() {
            Some(p) => {
                let out = self.read_staging(&p.staging, &p.lens, Some(p.index))?;
                self.guarded(out, p.guarded, p.step).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The outputs read back, less the numerics guard's words of a training step, which
    /// are checked (`guard.rs`).
    fn guarded(&self, mut out: Vec<Vec<f32>>, guarded: bool, step: u64) -> Result<Vec<Vec<f32>>> {
        if guarded {
            let words = out.pop().expect("a training step reads its guard back");
            self.check_guard(&words, step)?;
        }
        Ok(out)
    }

    /// Maps a staging buffer holding outputs of lengths `lens` and splits it.
    fn read_staging(
        &self,
        staging: &wgpu::Buffer,
        lens: &[usize],
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<Vec<f32>>> {
        let flat = self.ctx.map_read(staging, lens.iter().sum(), after)?;
        let mut res = Vec::with_capacity(lens.len());
        let mut off = 0;
        for len in lens {
            res.push(flat[off..off + len].to_vec());
            off += len;
        }
        Ok(res)
    }

    /// Host time of the last call spent writing inputs, recording dispatches and submitting
    /// (not waiting for the device).
    pub fn last_encode_time(&self) -> std::time::Duration {
        self.last_encode
    }

    /// Bounds the plans kept (least recently used dropped first, with their buffers);
    /// 16 by default.
    pub fn set_plan_limit(&mut self, plans: usize) {
        self.plans.set_limit(plans);
    }

    /// Plans cached now.
    pub fn cached_plans(&self) -> usize {
        self.plans.len()
    }

    /// Training steps run so far (salts dropout masks).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Sets the training step counter (used when resuming from a checkpoint).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }
}

pub(crate) use arenas::UpdateRule;
use arenas::{init_fill, orthogonal, param_arenas, LearnerState, ParamArena};
