//! The executor: owns the device state of one graph (parameters, constants, learner state)
//! and runs plans. Each call writes the fed inputs, records every dispatch into one command
//! encoder, submits once, and reads back only what was asked for.

use std::collections::HashMap;

use crate::device::Context;
use crate::graph::{Graph, Init, Node, NodeId, Op};
use crate::kernels::contract::Hyper;
use crate::kernels::Kernel;
use crate::plan::summary::PlanSummary;
use crate::plan::{self, ArenaUpdate, Extras, Plan};
use crate::tensor::{Fill, Tensor};
use crate::{Error, Result};

/// A named tensor on the host: (name, shape, row-major data).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Values fed to input variables: `(input node, row-major data)` pairs.
pub type Feed<'a> = [(NodeId, &'a [f32])];

/// How a learner updates each parameter (produced by the learners in `optim`).
#[derive(Clone, Debug)]
pub(crate) struct UpdateRule {
    pub kernel: Kernel,
    /// Number of state tensors per parameter (e.g. 1 for momentum).
    pub state: usize,
    /// The hyper-parameter uniform (see `shaders/optim.wgsl`).
    pub hyper: Hyper,
}

struct LearnerState {
    rule: UpdateRule,
    /// Scalar node: the gradient clipping factor (a constant 1 without clipping).
    clip: NodeId,
    /// (parameter, its gradient node, its state tensors)
    params: Vec<(NodeId, NodeId, Vec<Tensor>)>,
    hyper: wgpu::Buffer,
    /// Per parameter arena: the gradient arena, the state arenas, and the runs of
    /// consecutive parameters the learner updates, each as (byte offset, floats,
    /// (gradient node, byte offset) of its parameters).
    arenas: Vec<LearnerArena>,
}

/// Consecutive parameters that one update dispatch covers: byte offset, floats, and the
/// gradient node and byte offset of each parameter.
type UpdateRun = (u64, usize, Vec<(NodeId, u64)>);

/// Trainable parameters of one arena: (parameter, byte offset, elements), in offset order.
type ArenaMembers = Vec<(NodeId, u64, usize)>;

struct LearnerArena {
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    states: Vec<wgpu::Buffer>,
    runs: Vec<UpdateRun>,
}

/// Trainable parameters stored side by side in one buffer, each at an offset aligned for
/// binding, so that a learner updates all of them in one dispatch.
struct ParamArena {
    buffer: wgpu::Buffer,
    floats: usize,
    members: ArenaMembers,
}

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

/// A plan is specific to its outputs, its pass and the batch size.
type PlanKey = (Vec<NodeId>, Pass, usize);

/// Runs a graph on a [`Context`]; see the module docs.
pub struct Executor {
    ctx: Context,
    nodes: Vec<Node>,
    persistent: HashMap<NodeId, Tensor>,
    arenas: Vec<ParamArena>,
    plans: HashMap<PlanKey, Plan>,
    learner: Option<LearnerState>,
    assigns: Vec<(NodeId, NodeId)>,
    /// Per-call uniform: the training step (salts dropout masks).
    runtime: wgpu::Buffer,
    step: u32,
    /// Host time spent writing inputs, encoding and submitting in the last call.
    last_encode: std::time::Duration,
    /// The deferred call not read yet.
    pending: Option<Pending>,
}

/// A deferred call's outputs, copied into a staging buffer by a submission not waited for.
struct Pending {
    staging: wgpu::Buffer,
    /// Which of the plan's staging buffers (1 or 2).
    slot: usize,
    lens: Vec<usize>,
    index: wgpu::SubmissionIndex,
}

impl Executor {
    /// Takes a snapshot of `graph` (nodes added later are not seen) and initialises its
    /// parameters and constants on the device.
    pub fn new(ctx: &Context, graph: &Graph) -> Result<Executor> {
        let nodes = graph.nodes().clone();
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
                Op::Param { init, seed, .. } => init_fill(*init, &dims, *seed),
                Op::Const { value } => Fill::Const(*value),
                _ => continue,
            };
            match persistent.get(&NodeId(i)) {
                Some(t) => t.fill(ctx, fill)?,
                None => {
                    persistent.insert(NodeId(i), Tensor::filled(ctx, &dims, fill)?);
                }
            }
        }
        let runtime = ctx.buffer(
            "runtime",
            16,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        Ok(Executor {
            ctx: ctx.clone(),
            nodes,
            persistent,
            arenas,
            plans: HashMap::new(),
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

    /// Installs the update rule of a learner for `(parameter, gradient)` pairs.
    pub(crate) fn set_learner(
        &mut self,
        rule: UpdateRule,
        pairs: &[(NodeId, NodeId)],
        clip: NodeId,
    ) -> Result<()> {
        let hyper = self.ctx.buffer(
            "learner hyper-parameters",
            48,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        self.ctx
            .queue
            .write_buffer(&hyper, 0, bytemuck::bytes_of(&rule.hyper));
        // Gradients and learner state mirror the layout of the parameter arenas.
        let mut arenas = Vec::new();
        let mut params = Vec::new();
        for a in &self.arenas {
            let grads = self.ctx.storage("gradient arena", a.floats)?;
            let states = (0..rule.state)
                .map(|_| self.ctx.storage("learner state arena", a.floats))
                .collect::<Result<Vec<_>>>()?;
            // Runs of consecutive members that the learner updates.
            let mut runs: Vec<UpdateRun> = Vec::new();
            let mut open = false;
            for &(p, offset, len) in &a.members {
                let Some(&(_, g)) = pairs.iter().find(|pg| pg.0 == p) else {
                    open = false;
                    continue;
                };
                let dims = self.nodes[p.0].shape.resolve(1);
                let state = states
                    .iter()
                    .map(|b| Tensor::view(b, offset, &dims))
                    .collect();
                params.push((p, g, state));
                let end = offset + len as u64 * 4;
                match runs.last_mut().filter(|_| open) {
                    Some(run) => {
                        run.1 = ((end - run.0) / 4) as usize;
                        run.2.push((g, offset));
                    }
                    None => runs.push((offset, len, vec![(g, offset)])),
                }
                open = true;
            }
            arenas.push(LearnerArena {
                params: a.buffer.clone(),
                grads,
                states,
                runs,
            });
        }
        if let Some(&(p, _)) = pairs.iter().find(|pg| !params.iter().any(|q| q.0 == pg.0)) {
            return Err(Error::Invalid(format!(
                "learner: node {} is not a trainable parameter",
                p.0
            )));
        }
        self.plans.retain(|k, _| k.1 != Pass::Train);
        self.learner = Some(LearnerState {
            rule,
            clip,
            params,
            hyper,
            arenas,
        });
        Ok(())
    }

    /// Rewrites the learner's hyper-parameters (e.g. a new learning rate); no re-planning.
    pub(crate) fn set_hyper(&mut self, hyper: Hyper) {
        if let Some(l) = self.learner.as_mut().filter(|l| l.rule.hyper != hyper) {
            l.rule.hyper = hyper;
            self.ctx
                .queue
                .write_buffer(&l.hyper, 0, bytemuck::bytes_of(&hyper));
        }
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
        let training = pass != Pass::Eval;
        let key = self.ensure_plan(outputs, feed, pass, read == Readback::Deferred)?;
        let t_encode = std::time::Instant::now();
        let plan = &self.plans[&key];
        debug_assert_eq!(plan.batch, key.2);
        for (id, buf, len) in &plan.inputs {
            let data = feed.iter().find(|(f, _)| f == id).map(|(_, d)| *d).unwrap();
            debug_assert_eq!(data.len(), *len);
            self.ctx
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(data));
        }
        if training {
            self.step = self.step.wrapping_add(1);
            self.ctx.queue.write_buffer(
                &self.runtime,
                0,
                bytemuck::cast_slice(&[self.step, 0, 0, 0]),
            );
        }
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        plan::record(&plan.steps, &mut enc);
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
        match (read, staging) {
            (Readback::Now, Some(staging)) => {
                let lens: Vec<usize> = plan.outputs.iter().map(|o| o.2).collect();
                self.read_staging(staging, &lens, None).map(Some)
            }
            (Readback::Deferred, Some(staging)) => {
                // Read the previous deferred step (waiting for it alone) while this one runs.
                let lens = plan.outputs.iter().map(|o| o.2).collect();
                let previous = self.pending.replace(Pending {
                    staging: staging.clone(),
                    slot,
                    lens,
                    index,
                });
                match previous {
                    Some(p) => self
                        .read_staging(&p.staging, &p.lens, Some(p.index))
                        .map(Some),
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// The key of the plan for `outputs` in `pass` at the feed's batch size, building the
    /// plan first if needed (with the deferred readback buffers when `deferred`).
    fn ensure_plan(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        pass: Pass,
        deferred: bool,
    ) -> Result<PlanKey> {
        let training = pass != Pass::Eval;
        let update = pass == Pass::Train;
        for o in outputs {
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
            targets.extend(self.assigns.iter().map(|a| a.1));
        }
        let batch = self.batch_size(&targets, feed, training)?;
        let key = (outputs.to_vec(), pass, batch);
        if !self.plans.contains_key(&key) {
            let mut updates: Vec<ArenaUpdate> = Vec::new();
            if let (Some(l), true) = (&self.learner, update) {
                for a in &l.arenas {
                    for (offset, len, members) in &a.runs {
                        let mut targets = vec![&a.params];
                        targets.extend(a.states.iter());
                        updates.push(ArenaUpdate {
                            kernel: l.rule.kernel,
                            hyper: &l.hyper,
                            clip: l.clip,
                            grads: &a.grads,
                            targets,
                            offset: *offset,
                            len: *len,
                            members: members.clone(),
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
            };
            let plan = plan::build(
                &self.ctx,
                &self.nodes,
                &self.persistent,
                outputs,
                &extras,
                batch,
            )?;
            self.plans.insert(key.clone(), plan);
        }
        if deferred {
            let plan = self.plans.get_mut(&key).expect("planned");
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
            Some(p) => self
                .read_staging(&p.staging, &p.lens, Some(p.index))
                .map(Some),
            None => Ok(None),
        }
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

    /// Checks the feed against the inputs the targets need and returns the batch size.
    fn batch_size(&self, targets: &[NodeId], feed: &Feed, training: bool) -> Result<usize> {
        let need = plan::needed(&self.nodes, targets, training);
        for (id, _) in feed {
            if !matches!(self.nodes.get(id.0).map(|n| &n.op), Some(Op::Input { .. })) {
                return Err(Error::Feed(format!(
                    "node {} is not an input variable",
                    id.0
                )));
            }
        }
        let mut batch: Option<(usize, String)> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let Op::Input { name } = &node.op else {
                continue;
            };
            if !need[i] {
                continue;
            }
            let Some((_, data)) = feed.iter().find(|(f, _)| f.0 == i) else {
                return Err(Error::Feed(format!(
                    "input '{name}' (shape {}) was not fed",
                    node.shape
                )));
            };
            let per = node.shape.per_sample();
            if !node.shape.has_batch() {
                if data.len() != per {
                    return Err(Error::Feed(format!(
                        "input '{name}' (shape {}) needs {per} values, got {}",
                        node.shape,
                        data.len()
                    )));
                }
                continue;
            }
            if data.is_empty() || data.len() % per != 0 {
                return Err(Error::Feed(format!(
                    "input '{name}' (shape {}) needs a non-zero multiple of {per} values, got {}",
                    node.shape,
                    data.len()
                )));
            }
            let b = data.len() / per;
            match &batch {
                Some((b0, n0)) if *b0 != b => {
                    return Err(Error::Feed(format!(
                    "inputs disagree on the batch size: '{n0}' has {b0} samples, '{name}' has {b}"
                )))
                }
                _ => batch = Some((b, name.clone())),
            }
        }
        Ok(batch.map_or(1, |b| b.0))
    }

    /// Reads a parameter's current values.
    pub fn parameter(&self, id: NodeId) -> Result<Vec<f32>> {
        self.param_tensor(id)?.to_vec(&self.ctx)
    }

    /// Overwrites a parameter's values.
    pub fn set_parameter(&mut self, id: NodeId, data: &[f32]) -> Result<()> {
        let t = self.param_tensor(id)?;
        t.write(&self.ctx, data)
    }

    fn param_tensor(&self, id: NodeId) -> Result<&Tensor> {
        match self.nodes.get(id.0).map(|n| &n.op) {
            Some(Op::Param { .. }) => Ok(&self.persistent[&id]),
            _ => Err(Error::Invalid(format!("node {} is not a parameter", id.0))),
        }
    }

    /// Every variable (parameters and state) and every learner state tensor, by name:
    /// variables under their own names, learner state as `{parameter}/learner{k}`.
    pub fn export_state(&self) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { name, .. } = &node.op {
                let t = &self.persistent[&NodeId(i)];
                out.push((name.clone(), t.shape().to_vec(), t.to_vec(&self.ctx)?));
            }
        }
        if let Some(l) = &self.learner {
            for (p, _, state) in &l.params {
                let Op::Param { name, .. } = &self.nodes[p.0].op else {
                    continue;
                };
                for (k, t) in state.iter().enumerate() {
                    out.push((
                        format!("{name}/learner{k}"),
                        t.shape().to_vec(),
                        t.to_vec(&self.ctx)?,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Restores what [`Executor::export_state`] produced; every tensor must be present with
    /// the same shape.
    pub fn import_state(&mut self, entries: &[NamedTensor]) -> Result<()> {
        let mut targets: Vec<(String, &Tensor)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { name, .. } = &node.op {
                targets.push((name.clone(), &self.persistent[&NodeId(i)]));
            }
        }
        if let Some(l) = &self.learner {
            for (p, _, state) in &l.params {
                let Op::Param { name, .. } = &self.nodes[p.0].op else {
                    continue;
                };
                for (k, t) in state.iter().enumerate() {
                    targets.push((format!("{name}/learner{k}"), t));
                }
            }
        }
        for (name, t) in &targets {
            let Some((_, shape, data)) = entries.iter().find(|e| &e.0 == name) else {
                return Err(Error::Invalid(format!("state: {name} is missing")));
            };
            if shape != t.shape() {
                return Err(Error::Invalid(format!(
                    "state: {name} has shape {shape:?}, the model {:?}",
                    t.shape()
                )));
            }
            t.write(&self.ctx, data)?;
        }
        Ok(())
    }

    /// Host time of the last call spent writing inputs, recording dispatches and submitting
    /// (not waiting for the device).
    pub fn last_encode_time(&self) -> std::time::Duration {
        self.last_encode
    }

    /// Training steps run so far (salts dropout masks).
    pub fn step(&self) -> u32 {
        self.step
    }

    /// Sets the training step counter (used when resuming from a checkpoint).
    pub fn set_step(&mut self, step: u32) {
        self.step = step;
    }

    /// Runs the plan for `outputs` (in training mode when `training`, with the learner's
    /// updates) one dispatch at a time, each repeated `PROFILE_REPEATS` times in one submit,
    /// and returns each dispatch's label and mean seconds. For finding hot spots; far slower
    /// than a normal step, and repeated updates change the parameters.
    pub fn profile(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        training: bool,
    ) -> Result<Vec<(String, f64)>> {
        let pass = if training { Pass::Train } else { Pass::Eval };
        self.run(outputs, feed, pass, false)?; // builds the plan
        self.ctx.wait()?;
        let batch = self
            .plans
            .keys()
            .filter(|k| k.0 == outputs && k.1 == pass)
            .map(|k| k.2)
            .next()
            .unwrap_or(1);
        let plan = &self.plans[&(outputs.to_vec(), pass, batch)];
        let mut out = Vec::with_capacity(plan.steps.len());
        for s in &plan.steps {
            let t0 = std::time::Instant::now();
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            for c in &s.copies {
                c.record(&mut enc);
            }
            {
                let mut p = enc.begin_compute_pass(&Default::default());
                p.set_pipeline(&s.pipeline);
                p.set_bind_group(0, &s.bind, &[]);
                for _ in 0..PROFILE_REPEATS {
                    p.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
                }
            }
            self.ctx.submit(enc.finish());
            self.ctx.wait()?;
            let secs = t0.elapsed().as_secs_f64() / PROFILE_REPEATS as f64;
            out.push((s.label.clone(), secs));
        }
        Ok(out)
    }

    /// The plan for `outputs` (in training mode when `training`, with the learner's
    /// updates) described as data: each dispatch's kernel, what was fused into it and what
    /// it binds. Builds the plan if needed; runs nothing.
    pub fn plan_summary(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        training: bool,
    ) -> Result<PlanSummary> {
        let pass = if training { Pass::Train } else { Pass::Eval };
        let key = self.ensure_plan(outputs, feed, pass, false)?;
        Ok(self.plans[&key].summary.clone())
    }

    /// Bytes of intermediate buffers of the largest plan built so far (parameters and
    /// inputs not counted).
    pub fn peak_scratch_bytes(&self) -> u64 {
        self.plans
            .values()
            .map(|p| p.scratch_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Number of dispatches per call of the largest plan built so far.
    pub fn max_dispatches(&self) -> usize {
        self.plans
            .values()
            .map(|p| p.steps.len())
            .max()
            .unwrap_or(0)
    }
}

/// How often `Executor::profile` repeats each dispatch to time it.
const PROFILE_REPEATS: u32 = 20;

/// The fill for a parameter initialiser. Fans follow the usual conventions: for a matrix
/// `[in, out]`, fan_in = in and fan_out = out; for a filter `[out, in, k…]` the receptive
/// field multiplies both.
fn init_fill(init: Init, dims: &[usize], seed: u64) -> Fill {
    let (fan_in, fan_out) = match dims.len() {
        0 => (1, 1),
        1 => (dims[0], dims[0]),
        2 => (dims[0], dims[1]),
        _ => {
            let rf: usize = dims[2..].iter().product();
            (dims[1] * rf, dims[0] * rf)
        }
    };
    match init {
        Init::Zeros => Fill::Const(0.0),
        Init::Const(v) => Fill::Const(v),
        Init::Uniform { low, high } => Fill::Uniform { low, high, seed },
        Init::Normal { mean, std } => Fill::Normal { mean, std, seed },
        Init::GlorotUniform => {
            let l = (6.0 / (fan_in + fan_out) as f32).sqrt();
            Fill::Uniform {
                low: -l,
                high: l,
                seed,
            }
        }
        Init::HeNormal => Fill::Normal {
            mean: 0.0,
            std: (2.0 / fan_in as f32).sqrt(),
            seed,
        },
    }
}

/// Lays out the trainable parameters in arenas (each within the adapter's largest binding)
/// and allocates them; the caller initialises each parameter's view.
fn param_arenas(ctx: &Context, nodes: &[Node]) -> Result<Vec<ParamArena>> {
    // Offsets aligned for binding, and every slice a whole number of 16-byte vec4s.
    let align = (ctx.limits.min_storage_buffer_offset_alignment as u64).max(16);
    let max = ctx.max_binding_bytes();
    let mut layouts: Vec<(u64, ArenaMembers)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if !matches!(
            node.op,
            Op::Param {
                trainable: true,
                ..
            }
        ) {
            continue;
        }
        let len: usize = node.shape.resolve(1).iter().product();
        let bytes = (len.max(1) as u64 * 4).next_multiple_of(16);
        let fits = |end: u64| end.next_multiple_of(align) + bytes <= max;
        match layouts.last_mut().filter(|l| fits(l.0)) {
            Some(l) => {
                let offset = l.0.next_multiple_of(align);
                l.1.push((NodeId(i), offset, len));
                l.0 = offset + bytes;
            }
            None => layouts.push((bytes, vec![(NodeId(i), 0, len)])),
        }
    }
    layouts
        .into_iter()
        .map(|(end, members)| {
            let floats = (end / 4) as usize;
            Ok(ParamArena {
                buffer: ctx.storage("parameter arena", floats)?,
                floats,
                members,
            })
        })
        .collect()
}
