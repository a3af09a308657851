//! Emission: the GPU objects of a plan. Buffers for the inputs and slots, the parameter
//! blocks in one uniform buffer, operand textures on CPU adapters, a bind group per
//! dispatch and the readback buffer. After this the plan creates nothing per step.

use std::collections::{HashMap, HashSet};
use std::mem::offset_of;

use super::liveness::PlanGraph;
use super::lower::{Buf, Dispatch};
use super::stepwise::Loop;
use super::summary::{Activation, DispatchSummary, Fused, PlanSummary, Role};
use super::{Extras, Plan, Step, Storage};
use crate::device::{Context, PARAMS_SIZE};
use crate::dtype::DType;
use crate::graph::NodeId;
use crate::kernels::contract::Hyper;
use crate::kernels::textures::{
    operand_texture, texture_product, texture_update, StepCopy, TextureCopy, TextureProduct,
};
use crate::kernels::TEXTURE_WIDTH;
use crate::kernels::{bind_group, pipeline, precompile, Act, Epilogue, Gather, Kernel, Slice};
use crate::Result;

/// The element type of parameter, gradient and learner-state arenas.
const PARAM_DTYPE: DType = DType::F32;

/// Where the plan's values live, as decided by the passes.
pub(crate) struct Layout<'a> {
    pub storage: &'a [Option<Storage>],
    /// Each slot's size in bytes.
    pub slot_sizes: &'a [usize],
    /// The fed inputs, in the order of `Storage::Input`.
    pub inputs: &'a [NodeId],
    pub persistent: &'a HashMap<NodeId, crate::Tensor>,
}

/// Creates the plan's buffers, bind groups and readback for `dispatches`.
pub(crate) fn plan(
    ctx: &Context,
    g: &PlanGraph,
    layout: &Layout,
    dispatches: &[Dispatch],
    loops: &[Loop],
    extras: &Extras<'_>,
    outputs: &[NodeId],
) -> Result<Plan> {
    let inputs = input_buffers(ctx, g, layout.inputs)?;
    let mut slots = Vec::with_capacity(layout.slot_sizes.len());
    for (k, &n) in layout.slot_sizes.iter().enumerate() {
        slots.push(ctx.storage_bytes(&format!("slot {k}"), n as u64)?);
    }
    let mut scratch_bytes: u64 = layout.slot_sizes.iter().map(|&n| n as u64).sum();
    let scratch = scratch_buffers(ctx, dispatches)?;
    scratch_bytes += scratch.values().map(|b| b.size()).sum::<u64>();
    let node_slice = |i: usize| -> Slice {
        match layout.storage[i].expect("planned") {
            Storage::Input(k) => Slice::from(&inputs[k].1),
            Storage::Persistent(id) => layout.persistent[&id].slice(),
            Storage::Slot(s) => Slice::from(&slots[s]),
            Storage::Grad(k, off) => {
                Slice::elems(extras.updates[k].grads, off, g.numel(i), g.dtype(i))
            }
        }
    };
    let slice = |b: &Buf| -> Slice {
        match *b {
            Buf::Node(i) => node_slice(i),
            Buf::Arena {
                update,
                offset,
                len,
            } => Slice::elems(extras.updates[update].grads, offset, len, PARAM_DTYPE),
            Buf::UpdateGrads(k) => {
                let u = &extras.updates[k];
                Slice::elems(u.grads, u.offset, u.len, PARAM_DTYPE)
            }
            Buf::UpdateHyper(k) => Slice::from(extras.updates[k].hyper),
            Buf::UpdateTarget(k, t) => {
                let u = &extras.updates[k];
                Slice::elems(u.targets[t], u.offset, u.len, PARAM_DTYPE)
            }
            Buf::UpdateGuard(k) => Slice::from(extras.updates[k].guard),
            Buf::Numerics => Slice::from(extras.numerics.expect("a numerics buffer")),
            Buf::Runtime => Slice::from(extras.runtime),
            Buf::Scratch {
                node,
                part,
                offset,
                len,
            } => Slice::elems(&scratch[&(node, part)], 4 * offset as u64, len, DType::F32),
        }
    };
    let bound: Vec<Vec<Slice>> = dispatches
        .iter()
        .map(|d| d.buffers.iter().map(slice).collect())
        .collect();

    // Loop bodies' dispatches that read the iteration take one parameter block per step,
    // after the plan's own.
    let per_step = Loop::per_step_blocks(loops);
    let blocks = dispatches.len() + per_step.values().sum::<usize>();
    let params = ctx.buffer(
        "plan params",
        PARAMS_SIZE * blocks.max(1) as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    let updates = update_textures(ctx, dispatches, extras)?;
    scratch_bytes += updates.bytes;
    let (products, textures) = products_and_pipelines(ctx, dispatches, &bound, &updates.kernels)?;
    scratch_bytes += textures.iter().map(|t| t.2).sum::<u64>();
    let (mut copied, mut live) = (HashSet::new(), HashSet::new());
    let mut blob = vec![0u8; PARAMS_SIZE as usize * blocks];
    let mut next_block = dispatches.len();
    let mut steps = Vec::with_capacity(dispatches.len());
    let mut summary = Vec::with_capacity(dispatches.len());
    for (k, ((d, bufs), product)) in dispatches.iter().zip(&bound).zip(&products).enumerate() {
        let off = k * PARAMS_SIZE as usize;
        let bytes = d.params.bytes();
        blob[off..off + bytes.len()].copy_from_slice(bytes);
        let mut step = match (product, updates.kernels[k]) {
            (Some(t), _) => {
                summary.push(describe(d, t.kernel, &bufs[2..], 2));
                texture_step(ctx, d, t, bufs, &textures, &params, off)?
            }
            (None, Some(kernel)) => {
                let Buf::UpdateGrads(u) = d.buffers[0] else {
                    unreachable!("an update binds its gradients first")
                };
                let textures = &updates.textures[&u];
                let copy = copied.insert(u);
                let step = update_step(ctx, d, kernel, bufs, textures, copy, &params, off)?;
                // Texture copies only: the uniform's copies come below.
                let texture_copies = step.copies.len();
                summary.push(describe(d, kernel, &bufs[1..], texture_copies));
                step
            }
            (None, None) => {
                summary.push(describe(d, d.kernel, bufs, 0));
                let steps = per_step.get(&k).copied().unwrap_or(0);
                let mut binds = Vec::new();
                for step in 0..steps {
                    let at = next_block * PARAMS_SIZE as usize;
                    next_block += 1;
                    let p = d.params.at_step(step);
                    blob[at..at + p.bytes().len()].copy_from_slice(p.bytes());
                    binds.push(bind_group(ctx, d.kernel, &params, at as u64, bufs, &[])?);
                }
                plain_step(ctx, d, bufs, &params, off, binds)?
            }
        };
        step.copies
            .extend(live_copy(d, extras, &node_slice, &mut live));
        steps.push(step);
    }
    ctx.queue.write_buffer(&params, 0, &blob);

    let mut out_bufs: Vec<(wgpu::Buffer, u64, usize)> = outputs
        .iter()
        .map(|o| {
            let b = node_slice(o.0);
            (b.buffer.clone(), b.offset, g.numel(o.0))
        })
        .collect();
    out_bufs.extend(guard_readback(extras));
    let ready = ready_after(&bound, loops, &out_bufs);
    let staging = staging_buffers(ctx, &out_bufs)?;
    let mut keep = slots;
    keep.push(params);
    keep.extend(scratch.into_values());
    Ok(Plan {
        sizes: g.sizes,
        inputs,
        steps,
        loops: loops.to_vec(),
        outputs: out_bufs,
        ready,
        group_staging: None,
        staging,
        scratch_bytes,
        summary: PlanSummary {
            dispatches: summary,
            loops: loops.iter().map(Loop::summary).collect(),
            scratch_bytes,
        },
        _keep: keep,
    })
}

/// On CPU adapters, subgroup products read their operands from two textures, A's and B's,
/// each sized for the largest operand it takes (kernels/textures.rs), loop bodies' products
/// too (their copies are made at every iteration; the stepwise LSTM's training step runs
/// 1.35× faster so than with storage operands, benches/RESULTS.md). Also compiles the plan's new
/// pipelines side by side before the steps take them.
#[allow(clippy::type_complexity)]
fn products_and_pipelines(
    ctx: &Context,
    dispatches: &[Dispatch],
    bound: &[Vec<Slice>],
    updates: &[Option<Kernel>],
) -> Result<(
    Vec<Option<TextureProduct>>,
    Vec<(wgpu::Texture, wgpu::TextureView, u64)>,
)> {
    let products: Vec<_> = dispatches
        .iter()
        .zip(bound)
        .map(|(d, bufs)| match d.kernel {
            Kernel::MatmulSubgroup { .. } => {
                texture_product(ctx, d.kernel, &d.params, d.groups, [bufs[0], bufs[1]])
            }
            _ => None,
        })
        .collect();
    let textures = operand_textures(ctx, &products)?;
    let kernels: Vec<Kernel> = dispatches
        .iter()
        .zip(&products)
        .zip(updates)
        .map(|((d, t), u)| t.as_ref().map_or(u.unwrap_or(d.kernel), |t| t.kernel))
        .collect();
    precompile(ctx, &kernels)?;
    Ok((products, textures))
}

/// The step of dispatch `d` reading its operands from `textures` (copies of them first).
fn texture_step(
    ctx: &Context,
    d: &Dispatch,
    t: &TextureProduct,
    bufs: &[Slice],
    textures: &[(wgpu::Texture, wgpu::TextureView, u64)],
    params: &wgpu::Buffer,
    off: usize,
) -> Result<Step> {
    let label = d
        .label
        .replacen(&format!("{:?}", d.kernel), &format!("{:?}", t.kernel), 1);
    let copies = (0..2)
        .map(|side| {
            StepCopy::Texture(TextureCopy {
                buffer: bufs[side].buffer.clone(),
                offset: bufs[side].offset,
                texels: t.texels[side],
                texture: textures[side].0.clone(),
            })
        })
        .collect();
    let views = [&textures[0].1, &textures[1].1];
    Ok(Step {
        label,
        copies,
        pipeline: pipeline(ctx, t.kernel)?,
        bind: bind_group(ctx, t.kernel, params, off as u64, &bufs[2..], &views)?,
        per_step: Vec::new(),
        groups: t.groups,
    })
}

/// Learner updates reading their operands from textures (CPU adapters): per dispatch, the
/// texture version of an update's kernel; per update, the textures of its gradients,
/// parameters and states (in that order) with the texels each holds; their bytes.
struct UpdateTextures {
    kernels: Vec<Option<Kernel>>,
    textures: HashMap<usize, Vec<(wgpu::Texture, wgpu::TextureView, usize)>>,
    bytes: u64,
}

/// Which updates read textures (kernels/textures.rs: `texture_update`), with their textures.
fn update_textures(
    ctx: &Context,
    dispatches: &[Dispatch],
    extras: &Extras<'_>,
) -> Result<UpdateTextures> {
    let mut out = UpdateTextures {
        kernels: Vec::with_capacity(dispatches.len()),
        textures: HashMap::new(),
        bytes: 0,
    };
    for d in dispatches {
        let (Kernel::Update { rule, .. }, Some(&Buf::UpdateGrads(u))) =
            (d.kernel, d.buffers.first())
        else {
            out.kernels.push(None);
            continue;
        };
        let len = extras.updates[u].len;
        let kernel = texture_update(ctx, rule, len);
        if kernel.is_some() && !out.textures.contains_key(&u) {
            let texels = len.div_ceil(4);
            let mut made = Vec::new();
            for _ in 0..2 + rule.states() {
                let texture = operand_texture(ctx, texels)?;
                let view = texture.create_view(&Default::default());
                out.bytes += texels.next_multiple_of(TEXTURE_WIDTH) as u64 * 16;
                made.push((texture, view, texels));
            }
            out.textures.insert(u, made);
        }
        out.kernels.push(kernel);
    }
    Ok(out)
}

/// The step of dispatch `d` reading its buffers, with its bind groups per loop step.
fn plain_step(
    ctx: &Context,
    d: &Dispatch,
    bufs: &[Slice],
    params: &wgpu::Buffer,
    off: usize,
    per_step: Vec<wgpu::BindGroup>,
) -> Result<Step> {
    Ok(Step {
        label: d.label.clone(),
        copies: Vec::new(),
        pipeline: pipeline(ctx, d.kernel)?,
        bind: bind_group(ctx, d.kernel, params, off as u64, bufs, &[])?,
        per_step,
        groups: d.groups,
    })
}

/// The copy that brings a value the device made into an update's hyper-parameter uniform,
/// before the update's first pass of each kind (`done` records them): the clipping factor
/// before its check pass, the guard's word 0 (after every check) before its apply pass.
fn live_copy<'a>(
    d: &Dispatch,
    extras: &Extras<'_>,
    node_slice: &impl Fn(usize) -> Slice<'a>,
    done: &mut HashSet<(usize, bool)>,
) -> Option<StepCopy> {
    let (Kernel::Update { .. }, Some(&Buf::UpdateGrads(u))) = (d.kernel, d.buffers.first()) else {
        return None;
    };
    let check = matches!(d.role, Role::UpdateCheck { .. });
    if !done.insert((u, check)) {
        return None;
    }
    let update = &extras.updates[u];
    let (from, from_offset, to_offset) = match check {
        true => {
            let clip = node_slice(update.clip.0);
            (clip.buffer.clone(), clip.offset, offset_of!(Hyper, clip))
        }
        false => ((**update.guard).clone(), 0, offset_of!(Hyper, flagged)),
    };
    Some(StepCopy::Buffer {
        from,
        from_offset,
        to: update.hyper.clone(),
        to_offset: to_offset as u64,
        bytes: 4,
    })
}

/// The step of update dispatch `d` run as `kernel`, reading `textures` (the gradients',
/// parameters' and states'), which it first fills from its buffers when `copy` (the
/// update's first pass).
#[allow(clippy::too_many_arguments)]
fn update_step(
    ctx: &Context,
    d: &Dispatch,
    kernel: Kernel,
    bufs: &[Slice],
    textures: &[(wgpu::Texture, wgpu::TextureView, usize)],
    copy: bool,
    params: &wgpu::Buffer,
    off: usize,
) -> Result<Step> {
    // The bound buffers: gradients, hyper-parameters, parameters, then the states.
    let sources = std::iter::once(&bufs[0]).chain(&bufs[2..1 + textures.len()]);
    let copies = match copy {
        true => sources
            .zip(textures)
            .map(|(b, t)| {
                StepCopy::Texture(TextureCopy {
                    buffer: b.buffer.clone(),
                    offset: b.offset,
                    texels: t.2,
                    texture: t.0.clone(),
                })
            })
            .collect(),
        false => Vec::new(),
    };
    let views: Vec<&wgpu::TextureView> = textures.iter().map(|t| &t.1).collect();
    Ok(Step {
        label: format!("{} from textures", d.label),
        copies,
        pipeline: pipeline(ctx, kernel)?,
        bind: bind_group(ctx, kernel, params, off as u64, &bufs[1..], &views)?,
        per_step: Vec::new(),
        groups: d.groups,
    })
}

/// The scratch buffers the dispatches name ([`Buf::Scratch`]), each sized to its largest
/// use (and rounded up, so that every slice's 16-byte rounding fits).
fn scratch_buffers(
    ctx: &Context,
    dispatches: &[Dispatch],
) -> Result<HashMap<(usize, u8), crate::device::Buffer>> {
    let mut sizes: HashMap<(usize, u8), usize> = HashMap::new();
    for d in dispatches {
        for b in &d.buffers {
            if let Buf::Scratch {
                node,
                part,
                offset,
                len,
            } = *b
            {
                let end = sizes.entry((node, part)).or_default();
                *end = (*end).max(offset + len);
            }
        }
    }
    let mut out = HashMap::new();
    for ((node, part), end) in sizes {
        let floats = (end + 4).div_ceil(64) * 64;
        let label = format!("node {node} scratch {part}");
        out.insert((node, part), ctx.storage(&label, floats, DType::F32)?);
    }
    Ok(out)
}

/// A buffer for each fed input: (input, buffer, elements).
fn input_buffers(
    ctx: &Context,
    g: &PlanGraph,
    ids: &[NodeId],
) -> Result<Vec<(NodeId, crate::device::Buffer, usize)>> {
    let mut inputs = Vec::with_capacity(ids.len());
    for &id in ids {
        let name = match g.op(id.0) {
            crate::Op::Input { name } => name.clone(),
            _ => unreachable!("inputs are input nodes"),
        };
        inputs.push((
            id,
            ctx.storage(&format!("input {name}"), g.numel(id.0), g.dtype(id.0))?,
            g.numel(id.0),
        ));
    }
    Ok(inputs)
}

/// Per output: one past the last dispatch that binds any of its bytes (the end of the loop
/// whose body holds that dispatch), 0 when none does: after that many steps it is final.
fn ready_after(
    bound: &[Vec<Slice>],
    loops: &[Loop],
    outputs: &[(wgpu::Buffer, u64, usize)],
) -> Vec<usize> {
    outputs
        .iter()
        .map(|(buffer, offset, len)| {
            let (lo, hi) = (*offset, offset + 4 * *len as u64);
            let touches = |s: &Slice| {
                s.buffer == buffer
                    && s.offset < hi
                    && s.size.is_none_or(|n| s.offset + n.get() > lo)
            };
            match bound.iter().rposition(|bs| bs.iter().any(touches)) {
                None => 0,
                Some(k) => loops
                    .iter()
                    .find(|l| l.first <= k && k < l.first + l.len)
                    .map_or(k + 1, |l| l.first + l.len),
            }
        })
        .collect()
}

/// A training step's guard words, read back after its outputs.
fn guard_readback(extras: &Extras<'_>) -> Option<(wgpu::Buffer, u64, usize)> {
    let u = extras.updates.first()?;
    Some(((**u.guard).clone(), 0, (u.guard.size() / 4) as usize))
}

/// The summary of dispatch `d` run as `kernel` with `bufs` bound (and `copies` operands
/// copied into textures first).
fn describe(d: &Dispatch, kernel: Kernel, bufs: &[Slice], copies: usize) -> DispatchSummary {
    let bytes = bufs
        .iter()
        .map(|s| s.size.map_or(s.buffer.size() - s.offset, |n| n.get()))
        .sum();
    let mut fused = fused_parts(kernel);
    if d.alpha != 1.0 {
        fused.push(Fused::Alpha(d.alpha));
    }
    DispatchSummary {
        role: d.role,
        shader: kernel.shader(),
        entry: kernel.entry(),
        output: d.output.clone(),
        fused,
        buffers: bufs.len(),
        bytes,
        operand_copies: copies,
    }
}

/// What a kernel's specialisation says was folded into it.
fn fused_parts(kernel: Kernel) -> Vec<Fused> {
    let activation = |act: Act| match act {
        Act::None => None,
        Act::Relu => Some(Activation::Relu),
        Act::Sigmoid => Some(Activation::Sigmoid),
        Act::Tanh => Some(Activation::Tanh),
    };
    let mut parts = Vec::new();
    let (epi, act, gather) = match kernel {
        Kernel::Matmul {
            epi, act, gather, ..
        }
        | Kernel::MatmulSubgroup {
            epi, act, gather, ..
        }
        | Kernel::MatmulTexture {
            epi, act, gather, ..
        } => (epi, act, gather),
        Kernel::Col2Im(_, act) | Kernel::MaxPoolGrad(_, act) | Kernel::AvgPoolGrad(_, act) => {
            parts.extend(activation(act).map(Fused::ActivationGrad));
            return parts;
        }
        Kernel::CeForwardError => return vec![Fused::ClassificationError],
        _ => return parts,
    };
    match gather {
        Gather::None => {}
        Gather::Im2col(_) => parts.push(Fused::Im2colGather),
        Gather::Transposed(_) => parts.push(Fused::TransposedWindow),
    }
    match epi {
        Epilogue::BiasPerColumn => parts.push(Fused::BiasPerColumn),
        Epilogue::BiasPerRow => parts.push(Fused::BiasPerRow),
        _ => {}
    }
    match (epi, activation(act)) {
        (Epilogue::ActivationSlope, Some(a)) => parts.push(Fused::ActivationGrad(a)),
        (_, Some(a)) => parts.push(Fused::Activation(a)),
        _ => {}
    }
    parts
}

/// The two operand textures (A's and B's) of the products that read textures, each sized
/// for the largest operand it takes, with their views and bytes; none without such products.
fn operand_textures(
    ctx: &Context,
    products: &[Option<TextureProduct>],
) -> Result<Vec<(wgpu::Texture, wgpu::TextureView, u64)>> {
    let mut textures = Vec::new();
    if products.iter().any(|t| t.is_some()) {
        for side in 0..2 {
            let texels = products
                .iter()
                .flatten()
                .map(|t| t.texels[side])
                .max()
                .unwrap_or(1);
            let texture = operand_texture(ctx, texels)?;
            let bytes = texels.next_multiple_of(TEXTURE_WIDTH) as u64 * 16;
            let view = texture.create_view(&Default::default());
            textures.push((texture, view, bytes));
        }
    }
    Ok(textures)
}

/// One staging buffer for immediate reads of `outputs`; the executor adds the two that
/// deferred reads alternate between when a deferred read first asks for them.
fn staging_buffers(
    ctx: &Context,
    outputs: &[(wgpu::Buffer, u64, usize)],
) -> Result<Vec<crate::device::Buffer>> {
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let total: usize = outputs.iter().map(|o| o.2).sum();
    Ok(vec![super::readback_buffer(ctx, total)?])
}
