//! Plans: for one set of requested nodes and one set of sizes (batch, steps), the order of
//! dispatches, the
//! buffers they use (intermediate buffers reused by liveness) and their bind groups. A plan
//! is built once and then replayed each step without creating any GPU object.
//!
//! [`build`] runs the passes in order: liveness, the gradient arena, the fusions, slot
//! allocation, kernel choice and lowering, and emission of the GPU objects. Every pass but
//! the last runs without a GPU.

mod alloc;
mod emit;
mod fuse;
mod grad_arena;
mod kernel_choice;
mod liveness;
mod lower;
mod scan;
mod stepwise;
pub mod summary;

use std::collections::HashMap;

use crate::device::{Buffer, Context};
use crate::graph::{Node, NodeId, Op};
use crate::kernels::textures::StepCopy;
use crate::kernels::Rule;
use crate::shape::Sizes;
use crate::Result;

pub(crate) use liveness::needed;
use summary::PlanSummary;

/// Where a node's value lives during a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Storage {
    /// The plan's buffer for a fed input (index into `Plan::inputs`).
    Input(usize),
    /// A persistent tensor owned by the executor (parameter or constant).
    Persistent(NodeId),
    /// A reusable intermediate buffer.
    Slot(usize),
    /// A parameter's gradient, written in place in the gradient arena of update `.0` at
    /// byte offset `.1`.
    Grad(usize, u64),
}

/// A learner update of parameters stored side by side in an arena: one dispatch over the
/// byte range `[offset, offset + 4·len)` of the gradient, parameter and state arenas.
pub(crate) struct ArenaUpdate<'a> {
    pub rule: Rule,
    pub hyper: &'a wgpu::Buffer,
    /// Scalar node holding the gradient clipping factor.
    pub clip: NodeId,
    /// Gradients, laid out like the parameters.
    pub grads: &'a wgpu::Buffer,
    /// The parameter arena then the learner-state arenas, all written in place.
    pub targets: Vec<&'a Buffer>,
    pub offset: u64,
    pub len: usize,
    /// Each parameter's gradient node and its byte offset in the arenas.
    pub members: Vec<(NodeId, u64)>,
    /// The per-sample loss the numerics guard looks at.
    pub loss: NodeId,
    /// The guard's words (shared by every update of the learner), read back with the
    /// outputs.
    pub guard: &'a Buffer,
}

/// One recorded dispatch.
pub(crate) struct Step {
    /// Kernel and output shape, for profiles.
    pub label: String,
    /// Copies made just before it: its operands into textures, values into its uniforms
    /// (kernels/textures.rs).
    pub copies: Vec<StepCopy>,
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    /// In a loop body, for a kernel that reads the iteration: its bind group at each
    /// iteration (`bind` is the first's).
    pub per_step: Vec<wgpu::BindGroup>,
    pub groups: [u32; 3],
}

/// Records `steps` into `enc`: one compute pass, broken where copies come first;
/// the body of each of `loops` once per iteration.
pub(crate) fn record(steps: &[Step], loops: &[stepwise::Loop], enc: &mut wgpu::CommandEncoder) {
    record_range(steps, loops, 0..steps.len(), enc);
}

/// [`record`] for the steps in `range` only, which holds every loop it starts whole (as the
/// plan's [`Plan::ready`] points do). A step's copies end the compute pass before it, also
/// inside a loop body, where they are made at every iteration.
pub(crate) fn record_range(
    steps: &[Step],
    loops: &[stepwise::Loop],
    range: std::ops::Range<usize>,
    enc: &mut wgpu::CommandEncoder,
) {
    let mut pass: Option<wgpu::ComputePass<'static>> = None;
    // Records one dispatch of `s` with `bind`, its copies first (outside any pass).
    let mut dispatch = |s: &Step, bind: &wgpu::BindGroup| {
        if !s.copies.is_empty() {
            drop(pass.take());
            for c in &s.copies {
                c.record(enc);
            }
        }
        let p = pass.get_or_insert_with(|| {
            enc.begin_compute_pass(&Default::default())
                .forget_lifetime()
        });
        p.set_pipeline(&s.pipeline);
        p.set_bind_group(0, bind, &[]);
        p.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
    };
    let mut i = range.start;
    while i < range.end {
        match loops.iter().find(|l| l.first == i) {
            Some(l) => {
                debug_assert!(i + l.len <= range.end, "a range ends inside a loop");
                for k in 0..l.times {
                    for s in &steps[i..i + l.len] {
                        dispatch(s, s.per_step.get(k).unwrap_or(&s.bind));
                    }
                }
                i += l.len;
            }
            None => {
                dispatch(&steps[i], &steps[i].bind);
                i += 1;
            }
        }
    }
}

/// A compiled plan (see the module docs).
pub(crate) struct Plan {
    pub sizes: Sizes,
    /// Input node, its buffer and its length in elements.
    pub inputs: Vec<(NodeId, Buffer, usize)>,
    pub steps: Vec<Step>,
    /// Runs of `steps` replayed once per padded step.
    pub loops: Vec<stepwise::Loop>,
    /// Buffers of the requested nodes, byte offsets and lengths, copied to `staging` on
    /// request.
    pub outputs: Vec<(wgpu::Buffer, u64, usize)>,
    /// Per output: after how many steps its value is final (one past the last dispatch
    /// that binds its bytes, a loop's end when that is in a loop body; 0 when none does).
    pub ready: Vec<usize>,
    /// Readback buffers per group of outputs read as soon as they are final
    /// (`Executor::run_overlapped`): the groups they were made for, and one buffer each.
    pub group_staging: Option<(Vec<Vec<usize>>, Vec<Buffer>)>,
    /// Readback buffers: `[immediate]`, then `deferred A, deferred B` once a deferred read
    /// has asked for them; none without outputs.
    pub staging: Vec<Buffer>,
    /// Bytes of intermediate buffers and operand textures (excluding parameters and
    /// inputs).
    pub scratch_bytes: u64,
    /// The dispatches described as data.
    pub summary: PlanSummary,
    _keep: Vec<Buffer>,
}

/// What a plan computes besides its outputs.
pub(crate) struct Extras<'a> {
    /// Run the training branch of mode switches (dropout on, batch statistics).
    pub training: bool,
    /// Learner updates, run after everything else.
    pub updates: Vec<ArenaUpdate<'a>>,
    /// `(state, value)` copies run at the very end (running averages).
    pub assigns: Vec<(NodeId, NodeId)>,
    /// The executor's per-call uniform (step counter).
    pub runtime: &'a wgpu::Buffer,
    /// Where the per-op numerics check records the first bad node
    /// (`ContextOptions::check_numerics`).
    pub numerics: Option<&'a Buffer>,
}

/// Builds a plan computing `outputs` (read back) and the `extras`: the passes in order.
pub(crate) fn build(
    ctx: &Context,
    nodes: &[Node],
    persistent: &HashMap<NodeId, crate::Tensor>,
    outputs: &[NodeId],
    extras: &Extras<'_>,
    sizes: Sizes,
) -> Result<Plan> {
    let mut targets = outputs.to_vec();
    for u in &extras.updates {
        targets.extend(u.members.iter().map(|m| m.0));
        targets.push(u.clip);
        targets.push(u.loss);
    }
    targets.extend(extras.assigns.iter().map(|a| a.1));
    let g = liveness::PlanGraph::new(nodes, sizes, extras.training);
    let mut live = liveness::Liveness::new(&g, &targets);
    let members: Vec<_> = extras.updates.iter().map(|u| u.members.clone()).collect();
    let arena = grad_arena::claim(&g, &mut live, &members);
    let fusions = fuse::Fusions::find(&g, &mut live);
    let (mut storage, inputs) = fixed_storage(&g, &live, &arena);
    let slot_sizes = alloc::assign(&g, &live, &fusions, &mut storage);
    let target = kernel_choice::Target::of(ctx);
    let (dispatches, loops) = lower::dispatches(
        &g,
        &target,
        &live,
        &fusions,
        &arena,
        &extras.updates,
        &extras.assigns,
    )?;
    let layout = emit::Layout {
        storage: &storage,
        slot_sizes: &slot_sizes,
        inputs: &inputs,
        persistent,
    };
    emit::plan(ctx, &g, &layout, &dispatches, &loops, extras, outputs)
}

/// The buffers known before slot allocation: fed inputs (numbered in graph order),
/// parameters and constants, and gradients computed in the arena.
fn fixed_storage(
    g: &liveness::PlanGraph,
    live: &liveness::Liveness,
    arena: &grad_arena::GradArena,
) -> (Vec<Option<Storage>>, Vec<NodeId>) {
    let mut storage = vec![None; g.nodes.len()];
    let mut inputs = Vec::new();
    for i in live.needed() {
        storage[i] = match g.op(i) {
            Op::Input { .. } => {
                inputs.push(NodeId::at(i));
                Some(Storage::Input(inputs.len() - 1))
            }
            Op::Param { .. } | Op::Const { .. } => Some(Storage::Persistent(NodeId::at(i))),
            _ => None,
        };
    }
    for (&root, place) in &arena.claims {
        storage[root] = Some(Storage::Grad(place.update, place.offset));
    }
    (storage, inputs)
}

/// A buffer the outputs of a plan (`floats` in all) are copied into and read back from.
pub(crate) fn readback_buffer(ctx: &Context, floats: usize) -> Result<Buffer> {
    ctx.buffer(
        "plan readback",
        (floats * 4) as u64,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    )
}
