//! Plans: for one set of requested nodes and one batch size, the order of dispatches, the
//! buffers they use (intermediate buffers reused by liveness) and their bind groups. A plan
//! is built once and then replayed each step without creating any GPU object.

use std::collections::HashMap;

use crate::device::{Context, PARAMS_SIZE};
use crate::graph::{BinaryOp, Node, NodeId, Op, Window, BINARY_FIRST};
use crate::kernels::{bind_group, groups_1d, groups_per_item, Gather, Kernel, Params, Slice};
use crate::shape::strides;
use crate::tensor::fill_params;
use crate::textures::{operand_texture, texture_product, TextureCopy};
use crate::{Error, Fill, Result};

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
    pub kernel: Kernel,
    pub hyper: &'a wgpu::Buffer,
    /// Scalar node holding the gradient clipping factor.
    pub clip: NodeId,
    /// Gradients, laid out like the parameters.
    pub grads: &'a wgpu::Buffer,
    /// The parameter arena then the learner-state arenas, all written in place.
    pub targets: Vec<&'a wgpu::Buffer>,
    pub offset: u64,
    pub len: usize,
    /// Each parameter's gradient node and its byte offset in the arenas.
    pub members: Vec<(NodeId, u64)>,
}

/// One recorded dispatch.
pub(crate) struct Step {
    /// Kernel and output shape, for profiles.
    pub label: String,
    /// Copies of the dispatch's operands into textures, made just before it (textures.rs).
    pub copies: Vec<TextureCopy>,
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    pub groups: [u32; 3],
}

/// Records `steps` into `enc`: one compute pass, broken where texture copies come first.
pub(crate) fn record(steps: &[Step], enc: &mut wgpu::CommandEncoder) {
    let mut i = 0;
    while i < steps.len() {
        for c in &steps[i].copies {
            c.record(enc);
        }
        let mut pass = enc.begin_compute_pass(&Default::default());
        loop {
            let s = &steps[i];
            pass.set_pipeline(&s.pipeline);
            pass.set_bind_group(0, &s.bind, &[]);
            pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
            i += 1;
            if i == steps.len() || !steps[i].copies.is_empty() {
                break;
            }
        }
    }
}

/// A compiled plan (see the module docs).
pub(crate) struct Plan {
    pub batch: usize,
    /// Input node, its buffer and its length in elements.
    pub inputs: Vec<(NodeId, wgpu::Buffer, usize)>,
    pub steps: Vec<Step>,
    /// Buffers of the requested nodes, byte offsets and lengths, copied to `staging` on
    /// request.
    pub outputs: Vec<(wgpu::Buffer, u64, usize)>,
    /// Readback buffers: `[immediate]`, then `deferred A, deferred B` once a deferred read
    /// has asked for them; none without outputs.
    pub staging: Vec<wgpu::Buffer>,
    /// Bytes of intermediate buffers and operand textures (excluding parameters and
    /// inputs).
    pub scratch_bytes: u64,
    _keep: Vec<wgpu::Buffer>,
}

/// The inputs a node reads in this mode: a [`Op::Mode`] node reads only its active branch.
pub(crate) fn reads(op: &Op, training: bool) -> Vec<NodeId> {
    match *op {
        Op::Mode { train, eval } => vec![if training { train } else { eval }],
        _ => op.inputs(),
    }
}

/// The nodes needed to compute `targets`, as a mask over the graph.
pub(crate) fn needed(nodes: &[Node], targets: &[NodeId], training: bool) -> Vec<bool> {
    let mut need = vec![false; nodes.len()];
    for t in targets {
        need[t.0] = true;
    }
    for i in (0..nodes.len()).rev() {
        if need[i] {
            for j in reads(&nodes[i].op, training) {
                need[j.0] = true;
            }
        }
    }
    need
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
}

/// Builds a plan computing `outputs` (read back) and the `extras`.
pub(crate) fn build(
    ctx: &Context,
    nodes: &[Node],
    persistent: &HashMap<NodeId, crate::Tensor>,
    outputs: &[NodeId],
    extras: &Extras<'_>,
    batch: usize,
) -> Result<Plan> {
    let training = extras.training;
    let mut targets = outputs.to_vec();
    for u in &extras.updates {
        targets.extend(u.members.iter().map(|m| m.0));
        targets.push(u.clip);
    }
    targets.extend(extras.assigns.iter().map(|a| a.1));
    let need = needed(nodes, &targets, training);
    let dims: Vec<Vec<usize>> = nodes.iter().map(|n| n.shape.resolve(batch)).collect();
    let numel = |i: usize| dims[i].iter().product::<usize>();

    // Where each value lives; slots are assigned in a second pass.
    let mut storage: Vec<Option<Storage>> = vec![None; nodes.len()];
    let mut inputs = Vec::new();
    for i in (0..nodes.len()).filter(|&i| need[i]) {
        storage[i] = match &nodes[i].op {
            Op::Input { name } => {
                let buf = ctx.storage(&format!("input {name}"), numel(i))?;
                inputs.push((NodeId(i), buf, numel(i)));
                Some(Storage::Input(inputs.len() - 1))
            }
            Op::Param { .. } | Op::Const { .. } => Some(Storage::Persistent(NodeId(i))),
            _ => None,
        };
    }

    // Liveness: a slot is free again after the last step that reads it (through any
    // reshape of it); requested values and gradients feeding updates are never freed.
    let mut alias_root: Vec<usize> = (0..nodes.len()).collect();
    let alias_of = |op: &Op| match *op {
        Op::Reshape { x } => Some(x),
        Op::Mode { train, eval } => Some(if training { train } else { eval }),
        _ => None,
    };
    for i in (0..nodes.len()).filter(|&i| need[i]) {
        if let Some(x) = alias_of(&nodes[i].op) {
            alias_root[i] = alias_root[x.0];
        }
    }
    // Gradients feeding an update are computed straight into the gradient arena where their
    // value is a node of their own; the others are copied there after the backward pass. A
    // dispatch may not read and write the same buffer, so no node written into the arena
    // reads another such node, and a node shared by several gradients stays out of it.
    let member_root = |g: NodeId| alias_root[g.0];
    let mut uses: HashMap<usize, usize> = HashMap::new();
    for u in &extras.updates {
        for &(g, _) in &u.members {
            *uses.entry(member_root(g)).or_default() += 1;
        }
    }
    let mut claims: HashMap<usize, (usize, u64)> = HashMap::new();
    for (k, u) in extras.updates.iter().enumerate() {
        for &(g, off) in &u.members {
            let root = member_root(g);
            if storage[root].is_none() && uses[&root] == 1 {
                claims.insert(root, (k, off));
            }
        }
    }
    loop {
        let reads_claimed: Vec<usize> = claims
            .keys()
            .copied()
            .filter(|&r| {
                reads(&nodes[r].op, training)
                    .iter()
                    .any(|j| claims.contains_key(&alias_root[j.0]))
            })
            .collect();
        if reads_claimed.is_empty() {
            break;
        }
        for r in reads_claimed {
            claims.remove(&r);
        }
    }
    let mut grad_copies: Vec<(NodeId, usize, u64)> = Vec::new();
    for (k, u) in extras.updates.iter().enumerate() {
        for &(g, off) in &u.members {
            match claims.get(&member_root(g)) {
                Some(&(ck, coff)) if (ck, coff) == (k, off) => {
                    storage[member_root(g)] = Some(Storage::Grad(k, off));
                }
                _ => grad_copies.push((g, k, off)),
            }
        }
    }
    let mut slot_size: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut reads_at: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for i in (0..nodes.len()).filter(|&i| need[i]) {
        for j in reads(&nodes[i].op, training) {
            reads_at[alias_root[j.0]].push(i);
        }
    }
    let mut pinned = vec![false; nodes.len()];
    for t in &targets {
        pinned[alias_root[t.0]] = true;
    }
    // An im2col read only as the B operand of matrix products is never stored: the products
    // read the image through the window instead (implicit GEMM), and the image stays live
    // until they have run.
    let mut gathered: HashMap<usize, (NodeId, Window)> = HashMap::new();
    for i in (0..nodes.len()).filter(|&i| need[i] && storage[i].is_none() && !pinned[i]) {
        let Op::Im2Col { x, win } = nodes[i].op else {
            continue;
        };
        let as_b = |r: usize| match nodes[r].op {
            Op::Matmul { a, b, .. } => b.0 == i && a.0 != i,
            // Not pᵀ·q, which reads the batch as one long matrix.
            Op::MatmulSumBatch { p, q, tp, tq } => q.0 == i && p.0 != i && (!tp || tq),
            _ => false,
        };
        if !reads_at[i].is_empty() && reads_at[i].iter().all(|&r| as_b(r)) {
            gathered.insert(i, (x, win));
            let readers = reads_at[i].clone();
            reads_at[alias_root[x.0]].extend(readers);
        }
    }
    // A scaling read only by matrix products (directly, through reshapes or through gathered
    // im2cols) is not a dispatch: the products scale their result (alpha), and the scaling
    // shares its operand's buffer.
    let mut scaled: HashMap<usize, (NodeId, f32)> = HashMap::new();
    for i in (0..nodes.len()).filter(|&i| need[i] && storage[i].is_none() && !pinned[i]) {
        let Op::Unary {
            op: crate::UnaryOp::Scale(alpha),
            x,
        } = nodes[i].op
        else {
            continue;
        };
        let product = |r: usize| {
            matches!(nodes[r].op, Op::Matmul { .. } | Op::MatmulSumBatch { .. })
                || gathered.contains_key(&r)
                || alias_of(&nodes[r].op).is_some()
        };
        if !reads_at[i].is_empty() && reads_at[i].iter().all(|&r| product(r)) {
            scaled.insert(i, (x, alpha));
            let readers = reads_at[i].clone();
            reads_at[alias_root[x.0]].extend(readers);
        }
    }
    // What a product binds for operand j: a gathered im2col's image, else j.
    let bound = |j: NodeId| -> NodeId { gathered.get(&j.0).map_or(j, |g| g.0) };
    // The factor a folded scaling of operand j contributes to the product (1 without one).
    let alpha_of = |j: NodeId| -> f32 { scaled.get(&alias_root[bound(j).0]).map_or(1.0, |s| s.1) };
    // Where an operand's values come from: gathered im2cols read their images, and folded
    // scalings their operands.
    let source_of = |j: NodeId| -> NodeId {
        let j = bound(j);
        scaled.get(&alias_root[j.0]).map_or(j, |s| s.0)
    };
    // What node `i` reads, operands traced to their sources.
    let reads_through = |i: usize| -> Vec<NodeId> {
        reads(&nodes[i].op, training)
            .into_iter()
            .map(source_of)
            .collect()
    };
    // The col2im of a product dYᵀ·W, the input gradient of a stride-1 convolution, becomes
    // one product when nothing else reads the first: a convolution of dY with the flipped
    // filters, read through the transposed window, so neither result is stored.
    let mut transposed: HashMap<usize, (usize, Window)> = HashMap::new();
    for i in (0..nodes.len()).filter(|&i| need[i] && storage[i].is_none()) {
        let Op::Col2Im { x, win } = nodes[i].op else {
            continue;
        };
        let m = x.0;
        let Op::Matmul {
            a,
            b,
            ta: true,
            tb: false,
        } = nodes[m].op
        else {
            continue;
        };
        let (span_h, span_w) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
        if pinned[m]
            || reads_at[m] != [i]
            || (win.sh, win.sw) != (1, 1)
            || win.ph > span_h
            || win.pw > span_w
            || dims[a.0].len() != 3
            || dims[b.0].len() != 2
        {
            continue;
        }
        let t = Window {
            c: dims[b.0][0],
            h: win.oh,
            w: win.ow,
            ph: span_h - win.ph,
            pw: span_w - win.pw,
            oh: win.h,
            ow: win.w,
            ..win
        };
        transposed.insert(i, (m, t));
        for j in reads_through(m) {
            reads_at[alias_root[j.0]].push(i);
        }
    }
    // What node `i` reads, counting the reads of a product folded into it as its own.
    let reads_folded = |i: usize| -> Vec<NodeId> {
        match transposed.get(&i) {
            Some(&(m, _)) => reads_through(m),
            None => reads_through(i),
        }
    };
    // A bias + activation whose operand is a matrix product read by nothing else becomes
    // that product's epilogue: the product writes the biased, activated value directly. So
    // does an activation's gradient whose incoming gradient is such a product, a col2im or a
    // pooling gradient. The product's operands are then read at the fused node's position.
    let mut epilogue: HashMap<usize, (usize, u8)> = HashMap::new();
    for i in (0..nodes.len()).filter(|&i| need[i] && storage[i].is_none()) {
        let (x, epi_of) = match nodes[i].op {
            Op::BiasAct { x, axis, .. } => (x, Some(axis)),
            Op::Binary {
                op: BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad,
                a,
                b,
            } if dims[a.0] == dims[i] && dims[b.0] == dims[i] => (b, None),
            _ => continue,
        };
        let m = alias_root[x.0];
        // Readers through reshapes of the product are not dispatches.
        let only_reader = reads_at[m]
            .iter()
            .all(|&r| r == i || alias_of(&nodes[r].op).is_some());
        // col2im and pooling gradients take an activation's gradient too.
        let gathers = matches!(nodes[m].op, Op::Col2Im { .. } | Op::PoolGrad { .. });
        let takes = matches!(nodes[m].op, Op::Matmul { .. }) || (gathers && epi_of.is_none());
        if !takes || pinned[m] || !only_reader {
            continue;
        }
        let (dm, dx) = (&dims[m], &dims[i]);
        let (rows, cols) = (dm[dm.len() - 2], dm[dm.len() - 1]);
        let epi = match epi_of {
            // The gradient's factor applies element by element.
            None => 3,
            Some(axis) => {
                let (c, inner) = (dx[axis], dx[axis + 1..].iter().product::<usize>());
                if inner == 1 && c == cols {
                    1
                } else if inner == cols && c == rows {
                    2
                } else {
                    continue;
                }
            }
        };
        epilogue.insert(i, (m, epi));
        for j in reads_folded(m) {
            reads_at[alias_root[j.0]].push(i);
        }
    }
    // Cross-entropy and classification error of the same scores and targets (a trainer's loss
    // and metric) are one pass: the loss's dispatch writes both, and the error's slot is
    // taken with the loss's. Only for an error nothing in the plan reads.
    let mut sibling: HashMap<usize, usize> = HashMap::new();
    for i in (0..nodes.len()).filter(|&i| need[i] && storage[i].is_none()) {
        let Op::CrossEntropy { z, t } = nodes[i].op else {
            continue;
        };
        let error = (0..nodes.len()).find(|&j| {
            need[j]
                && storage[j].is_none()
                && reads_at[j].is_empty()
                && matches!(nodes[j].op, Op::ClassError { z: z2, t: t2 } if (z2, t2) == (z, t))
        });
        if let Some(j) = error {
            sibling.insert(i, j);
        }
    }
    let fused: std::collections::HashSet<usize> = epilogue
        .values()
        .map(|e| e.0)
        .chain(transposed.values().map(|t| t.0))
        .collect();
    for i in (0..nodes.len()).filter(|&i| need[i]) {
        if let Some(x) = alias_of(&nodes[i].op).or(scaled.get(&i).map(|s| s.0)) {
            storage[i] = storage[x.0];
        } else if storage[i].is_none() && !fused.contains(&i) && !gathered.contains_key(&i) {
            for k in std::iter::once(i).chain(sibling.get(&i).copied()) {
                // Take the smallest free slot that fits, else grow the largest, else a new one.
                let n = numel(k);
                let pick = free
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slot_size[s] >= n)
                    .min_by_key(|(_, &s)| slot_size[s])
                    .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slot_size[s]))
                    .map(|(k, _)| k);
                let slot = match pick {
                    Some(k) => free.swap_remove(k),
                    None => {
                        slot_size.push(0);
                        slot_size.len() - 1
                    }
                };
                slot_size[slot] = slot_size[slot].max(n);
                storage[k] = Some(Storage::Slot(slot));
            }
        }
        // Release the slots whose last reader is this node.
        let mut released: Vec<usize> = Vec::new();
        let mut read_here = reads_folded(i);
        if let Some(&(m, _)) = epilogue.get(&i) {
            read_here.extend(reads_folded(m));
        }
        for j in read_here {
            let root = alias_root[j.0];
            let last = reads_at[root].iter().copied().max().unwrap_or(0);
            if last == i && !pinned[root] {
                if let Some(Storage::Slot(s)) = storage[root] {
                    if !released.contains(&s) {
                        released.push(s);
                    }
                }
            }
        }
        free.extend(released);
    }

    let mut slots = Vec::with_capacity(slot_size.len());
    for (k, &n) in slot_size.iter().enumerate() {
        slots.push(ctx.storage(&format!("slot {k}"), n)?);
    }
    let mut scratch_bytes: u64 = slot_size.iter().map(|&n| (n * 4) as u64).sum();
    let arena_slice =
        |k: usize, offset: u64, n: usize| Slice::floats(extras.updates[k].grads, offset, n);
    let buffer_of = |i: usize| -> Slice {
        match storage[i].expect("planned") {
            Storage::Input(k) => Slice::from(&inputs[k].1),
            Storage::Persistent(id) => persistent[&id].slice(),
            Storage::Slot(s) => Slice::from(&slots[s]),
            Storage::Grad(k, off) => arena_slice(k, off, numel(i)),
        }
    };

    // The dispatches, in graph order, then the updates.
    let mut specs: Vec<(Kernel, Params, Vec<Slice>, [u32; 3])> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let skipped = |i: usize| {
        fused.contains(&i)
            || gathered.contains_key(&i)
            || scaled.contains_key(&i)
            || sibling.values().any(|&j| j == i)
    };
    for i in (0..nodes.len()).filter(|&i| need[i] && !skipped(i)) {
        // A node with an epilogue runs its product's kernel, with the bias (or the
        // activation's output) as the epilogue's side input.
        let (source, fuse) = match (epilogue.get(&i), &nodes[i].op) {
            (Some(&(m, epi)), &Op::BiasAct { b, act, .. }) => (m, Some((epi, act_code(act), b))),
            (Some(&(m, epi)), &Op::Binary { op, a, .. }) => {
                let act = match op {
                    BinaryOp::ReluGrad => crate::UnaryOp::Relu,
                    BinaryOp::SigmoidGrad => crate::UnaryOp::Sigmoid,
                    _ => crate::UnaryOp::Tanh,
                };
                (m, Some((epi, act_code(Some(act)), a)))
            }
            _ => (i, None),
        };
        let (mut kernel, mut params, groups, mut bufs) = match transposed.get(&source) {
            // The filters as A, the output gradients through the transposed window as B.
            Some(&(m, t)) => {
                let Op::Matmul { a: dy, b: w, .. } = nodes[m].op else {
                    unreachable!("a transposed convolution folds a product")
                };
                let size = [t.c * t.kh * t.kw, t.c * t.h * t.w];
                let (kernel, params, groups) = matmul_dispatch(
                    ctx,
                    [dims[w.0][1] / (t.kh * t.kw), t.oh * t.ow, size[0]],
                    [0, size[1], dims[dy.0][0], 1],
                    false,
                    true, // B's columns are the pixels, as in a forward convolution
                    Gather::Transposed(t),
                )?;
                (
                    kernel,
                    params,
                    groups,
                    vec![buffer_of(w.0), buffer_of(dy.0)],
                )
            }
            None => {
                let Some((kernel, params, groups)) = dispatch(ctx, nodes, &dims, source)? else {
                    continue;
                };
                let bufs: Vec<Slice> = nodes[source]
                    .op
                    .inputs()
                    .iter()
                    .map(|&j| buffer_of(bound(j).0))
                    .collect();
                (kernel, params, groups, bufs)
            }
        };
        // A product whose B is a gathered im2col reads the images, one per batch item.
        let gather = nodes[source]
            .op
            .inputs()
            .iter()
            .find_map(|j| gathered.get(&j.0).map(|g| (j.0, g.1)));
        // Folded scalings of the operands scale the product.
        let alpha: f32 = nodes[source]
            .op
            .inputs()
            .into_iter()
            .map(alpha_of)
            .product();
        if alpha != 1.0 {
            params.0[6] = alpha.to_bits();
        }
        if let Some((cols, win)) = gather {
            if let Kernel::Matmul { gather, vb, .. } | Kernel::MatmulSubgroup { gather, vb, .. } =
                &mut kernel
            {
                (*gather, *vb) = (Gather::Im2col(win), false);
            }
            if dims[cols].len() == 3 {
                params.0[5] = (win.c * win.h * win.w) as u32; // b_batch
            }
        }
        if let Op::Expand { .. } | Op::Permute { .. } = nodes[i].op {
            bufs.push(bufs[0]);
        }
        if ctx.options.poison {
            for k in std::iter::once(i).chain(sibling.get(&i).copied()) {
                specs.push((
                    Kernel::Fill,
                    fill_params(numel(k), Fill::Nan),
                    vec![buffer_of(k)],
                    groups_1d(numel(k)),
                ));
                labels.push("poison".into());
            }
        }
        bufs.push(buffer_of(i));
        if let Some(&j) = sibling.get(&i) {
            kernel = Kernel::CeForwardError;
            bufs.push(buffer_of(j));
        }
        if kernel == Kernel::Dropout {
            bufs.push(Slice::from(extras.runtime));
        }
        if let Kernel::Col2Im(_, act) | Kernel::MaxPoolGrad(_, act) | Kernel::AvgPoolGrad(_, act) =
            &mut kernel
        {
            match fuse {
                Some((_, a, output)) => {
                    *act = a;
                    bufs.push(buffer_of(output.0));
                }
                None => bufs.push(bufs[0]),
            }
        }
        if let Kernel::Matmul { epi, act, .. } | Kernel::MatmulSubgroup { epi, act, .. } =
            &mut kernel
        {
            match fuse {
                Some((e, a, bias)) => {
                    (*epi, *act) = (e, a);
                    bufs.push(buffer_of(bias.0));
                }
                None => bufs.push(bufs[0]),
            }
        }
        specs.push((kernel, params, bufs, groups));
        labels.push(format!("{kernel:?} {:?}", dims[i]));
    }
    let (copy_code, one) = crate::UnaryOp::Scale(1.0).code();
    for &(g, k, off) in &grad_copies {
        let n = numel(g.0);
        let bufs = vec![buffer_of(g.0), arena_slice(k, off, n)];
        let params = Params::new().u(n).u(copy_code).f(one);
        specs.push((Kernel::Unary, params, bufs, groups_1d(n)));
        labels.push(format!("gradient copy [{n}]"));
    }
    for u in &extras.updates {
        let range = |buffer| Slice::floats(buffer, u.offset, u.len);
        let mut bufs = vec![range(u.grads), Slice::from(u.hyper)];
        bufs.extend(u.targets.iter().map(|&t| range(t)));
        bufs.push(buffer_of(u.clip.0));
        // One invocation per vec4 of parameters.
        let groups = groups_1d(u.len.div_ceil(4));
        specs.push((u.kernel, Params::new().u(u.len), bufs, groups));
        labels.push(format!(
            "{:?} update of {} parameters [{}]",
            u.kernel,
            u.members.len(),
            u.len
        ));
    }
    for &(state, value) in &extras.assigns {
        let n = numel(state.0);
        let (code, alpha) = crate::UnaryOp::Scale(1.0).code();
        let bufs = vec![buffer_of(value.0), buffer_of(state.0)];
        specs.push((
            Kernel::Unary,
            Params::new().u(n).u(code).f(alpha),
            bufs,
            groups_1d(n),
        ));
    }

    let params = ctx.buffer(
        "plan params",
        PARAMS_SIZE * specs.len().max(1) as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    // On CPU adapters, subgroup products read their operands from two textures, A's and
    // B's, each sized for the largest operand it takes (textures.rs).
    let products: Vec<_> = specs
        .iter()
        .map(|(kernel, p, bufs, groups)| match kernel {
            Kernel::MatmulSubgroup { .. } => {
                texture_product(ctx, *kernel, p, *groups, [bufs[0], bufs[1]])
            }
            _ => None,
        })
        .collect();
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
            scratch_bytes += texels.next_multiple_of(crate::kernels::TEXTURE_WIDTH) as u64 * 16;
            let view = texture.create_view(&Default::default());
            textures.push((texture, view));
        }
    }
    let mut blob = vec![0u8; PARAMS_SIZE as usize * specs.len()];
    let mut steps = Vec::with_capacity(specs.len());
    for (k, ((kernel, p, bufs, groups), product)) in specs.iter().zip(&products).enumerate() {
        let off = k * PARAMS_SIZE as usize;
        let bytes = p.bytes();
        blob[off..off + bytes.len()].copy_from_slice(&bytes);
        let mut label = labels.get(k).cloned().unwrap_or_else(|| "assign".into());
        let step = match product {
            Some(t) => {
                label = label.replacen(&format!("{kernel:?}"), &format!("{:?}", t.kernel), 1);
                let copies = (0..2)
                    .map(|side| TextureCopy {
                        buffer: bufs[side].buffer.clone(),
                        offset: bufs[side].offset,
                        texels: t.texels[side],
                        texture: textures[side].0.clone(),
                    })
                    .collect();
                let views = [&textures[0].1, &textures[1].1];
                Step {
                    label,
                    copies,
                    pipeline: ctx.pipeline(t.kernel),
                    bind: bind_group(ctx, t.kernel, &params, off as u64, &bufs[2..], &views),
                    groups: t.groups,
                }
            }
            None => Step {
                label,
                copies: Vec::new(),
                pipeline: ctx.pipeline(*kernel),
                bind: bind_group(ctx, *kernel, &params, off as u64, bufs, &[]),
                groups: *groups,
            },
        };
        steps.push(step);
    }
    ctx.queue.write_buffer(&params, 0, &blob);

    let out_bufs: Vec<(wgpu::Buffer, u64, usize)> = outputs
        .iter()
        .map(|o| {
            let b = buffer_of(o.0);
            (b.buffer.clone(), b.offset, numel(o.0))
        })
        .collect();
    let total: usize = out_bufs.iter().map(|o| o.2).sum();
    // One staging buffer for immediate reads; the executor adds the two that deferred reads
    // alternate between when a deferred read first asks for them.
    let staging = if outputs.is_empty() {
        Vec::new()
    } else {
        vec![readback_buffer(ctx, total)?]
    };
    let mut keep = slots;
    keep.push(params);
    Ok(Plan {
        batch,
        inputs,
        steps,
        outputs: out_bufs,
        staging,
        scratch_bytes,
        _keep: keep,
    })
}

/// The kernel, parameter block and workgroup counts that compute node `i`; `None` for
/// nodes that need no dispatch (leaves and reshapes).
fn dispatch(
    ctx: &Context,
    nodes: &[Node],
    dims: &[Vec<usize>],
    i: usize,
) -> Result<Option<(Kernel, Params, [u32; 3])>> {
    let out = &dims[i];
    let n: usize = out.iter().product();
    let d = |x: NodeId| &dims[x.0];
    // [outer, len, inner] around an axis.
    let around = |x: &[usize], axis: usize| {
        let outer: usize = x[..axis].iter().product();
        let inner: usize = x[axis + 1..].iter().product();
        (outer, x[axis], inner)
    };
    // Window kernels take their geometry as pipeline constants; only the batch size varies.
    let window = |_: &Window, n: usize| Params::new().u(n);
    // [outer, len, inner] of the output around `axis`, with the operand's length there.
    let axis_params = |axis: usize, len_a: usize, begin: usize| {
        let (outer, len_out, inner) = around(out, axis);
        Params::new().u(outer).u(len_a).u(len_out).u(inner).u(begin)
    };
    Ok(Some(match nodes[i].op {
        Op::Input { .. }
        | Op::Param { .. }
        | Op::Const { .. }
        | Op::Reshape { .. }
        | Op::Mode { .. } => return Ok(None),
        // One invocation per window (kh·kw outputs).
        Op::Im2Col { x, win } => (
            Kernel::Im2Col(win),
            window(&win, d(x)[0]),
            groups_1d(n / (win.kh * win.kw)),
        ),
        Op::Col2Im { win, .. } => (Kernel::Col2Im(win, 0), window(&win, out[0]), groups_1d(n)),
        Op::Pool { x, win, max } => {
            let k = if max {
                Kernel::MaxPool(win)
            } else {
                Kernel::AvgPool(win)
            };
            (k, window(&win, d(x)[0]), groups_1d(n))
        }
        Op::PoolGrad { x, win, max, .. } => {
            let k = if max {
                Kernel::MaxPoolGrad(win, 0)
            } else {
                Kernel::AvgPoolGrad(win, 0)
            };
            // One invocation per pixel, or per tile when the windows tile the image.
            let per = if win.tiles() {
                let tiles = win.h.div_ceil(win.kh) * win.w.div_ceil(win.kw);
                n / (win.h * win.w) * tiles
            } else {
                n
            };
            (k, window(&win, d(x)[0]), groups_1d(per))
        }
        Op::Concat { a, axis, .. } => (
            Kernel::Concat,
            axis_params(axis, d(a)[axis], 0),
            groups_1d(n),
        ),
        Op::Slice { x, axis, begin } => (
            Kernel::Slice,
            axis_params(axis, d(x)[axis], begin),
            groups_1d(n),
        ),
        Op::Pad { x, axis, begin } => (
            Kernel::Pad,
            axis_params(axis, d(x)[axis], begin),
            groups_1d(n),
        ),
        // A permutation is a strided read: the broadcasting kernel with operand strides
        // permuted.
        Op::Permute { x, ref perm } => {
            if out.len() > 8 {
                return Err(Error::Invalid(format!(
                    "permute supports rank ≤ 8, got {out:?}"
                )));
            }
            let st = strides(d(x));
            let sa: Vec<usize> = perm.iter().map(|&a| st[a]).collect();
            let params = Params::new()
                .u(n)
                .u(out.len())
                .u(BINARY_FIRST)
                .f(1.0)
                .vec8(out)
                .vec8(&sa)
                .vec8(&sa);
            (Kernel::Binary, params, groups_1d(n))
        }
        Op::OneHot { .. } => {
            let classes = out[out.len() - 1];
            (
                Kernel::OneHot,
                Params::new().u(n / classes).u(0).u(classes).u(1).u(0),
                groups_1d(n),
            )
        }
        Op::Dropout { p, seed, .. } => {
            let scale = 1.0 / (1.0 - p);
            let params = Params::new()
                .u(n)
                .u(0)
                .u((seed & 0xffff_ffff) as usize)
                .u((seed >> 32) as usize)
                .f(p)
                .f(scale);
            (Kernel::Dropout, params, groups_1d(n))
        }
        Op::Unary { op, .. } => {
            let (code, alpha) = op.code();
            (
                Kernel::Unary,
                Params::new().u(n).u(code).f(alpha),
                groups_1d(n),
            )
        }
        Op::Binary { op, a, b } => (
            Kernel::Binary,
            broadcast_params(n, out, d(a), d(b), op.code(), 1.0)?,
            groups_1d(n),
        ),
        Op::Expand { x, mean_axis } => {
            let alpha = mean_axis.map_or(1.0, |ax| 1.0 / out[ax] as f32);
            (
                Kernel::Binary,
                broadcast_params(n, out, d(x), d(x), BINARY_FIRST, alpha)?,
                groups_1d(n),
            )
        }
        Op::Matmul { a, b, ta, tb } => {
            let (da, db) = (d(a), d(b));
            let (ra, ca) = (da[da.len() - 2], da[da.len() - 1]);
            let (rb, cb) = (db[db.len() - 2], db[db.len() - 1]);
            let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
            let nn = if tb { rb } else { cb };
            let a_batch = if da.len() == 3 { ra * ca } else { 0 };
            let b_batch = if db.len() == 3 { rb * cb } else { 0 };
            let batch = if out.len() == 3 { out[0] } else { 1 };
            matmul_dispatch(
                ctx,
                [m, nn, k],
                [a_batch, b_batch, batch, 1],
                ta,
                tb,
                Gather::None,
            )?
        }
        Op::MatmulSumBatch { p, q, tp, tq } => {
            let (dp, dq) = (d(p), d(q));
            if tp && !tq {
                // The stored [batch, r, ·] operands read as [batch·r, ·] matrices: pᵀ·q is
                // one product whose inner axis runs over batch and rows.
                let k = dp[0] * dp[1];
                matmul_dispatch(
                    ctx,
                    [dp[2], dq[2], k],
                    [0, 0, 1, 1],
                    true,
                    false,
                    Gather::None,
                )?
            } else {
                // Otherwise the kernel accumulates over the batch items itself.
                let (m, k) = if tp { (dp[2], dp[1]) } else { (dp[1], dp[2]) };
                let nn = if tq { dq[1] } else { dq[2] };
                let items = [dp[1] * dp[2], dq[1] * dq[2], 1, dp[0]];
                matmul_dispatch(ctx, [m, nn, k], items, tp, tq, Gather::None)?
            }
        }
        Op::BiasAct { axis, act, .. } => {
            let (_, c, inner) = around(out, axis);
            let act = act_code(act);
            let (c, inner) = (c as u32, inner as u32);
            (
                Kernel::BiasAct { c, inner, act },
                Params::new().u(n),
                groups_1d(n),
            )
        }
        // One workgroup per channel, or one invocation per channel of a matrix's columns.
        Op::ChannelSum { x, axis } => {
            let (_, c, inner) = around(d(x), axis);
            let len = d(x).iter().product::<usize>();
            let kernel = Kernel::ChannelSum {
                c: c as u32,
                inner: inner as u32,
            };
            let groups = if inner == 1 {
                [c.div_ceil(64) as u32, 1, 1]
            } else {
                groups_per_item(c)
            };
            (kernel, Params::new().u(len), groups)
        }
        Op::Reduce { op, x, axis } => {
            let (outer, len, inner) = around(d(x), axis);
            let code = op as usize;
            let params = Params::new().u(outer).u(len).u(inner).u(code);
            if cooperate(outer * inner, len) {
                (Kernel::ReduceWg, params, groups_per_item(outer * inner))
            } else {
                (Kernel::Reduce, params, groups_1d(outer * inner))
            }
        }
        Op::Softmax { x, axis, log } => {
            let (outer, len, inner) = around(d(x), axis);
            let params = Params::new().u(outer).u(len).u(inner).u(log as usize);
            if cooperate(outer * inner, len) {
                (Kernel::SoftmaxWg, params, groups_per_item(outer * inner))
            } else {
                (Kernel::Softmax, params, groups_1d(outer * inner))
            }
        }
        Op::CrossEntropy { z, .. } | Op::CrossEntropyGrad { z, .. } | Op::ClassError { z, .. } => {
            let dz = d(z);
            let classes = dz[dz.len() - 1];
            let rows = dz.iter().product::<usize>() / classes;
            let (kernel, scalar_g, scale) = match nodes[i].op {
                Op::CrossEntropy { .. } => (Kernel::CeForward, false, 1.0),
                Op::CrossEntropyGrad { scalar_g, mean, .. } => {
                    let scale = if mean { 1.0 / rows as f32 } else { 1.0 };
                    (Kernel::CeBackward, scalar_g, scale)
                }
                _ => (Kernel::ClassError, false, 1.0),
            };
            let params = Params::new()
                .u(rows)
                .u(classes)
                .u(scalar_g as usize)
                .f(scale);
            (kernel, params, groups_1d(rows))
        }
    }))
}

/// The kernels' activation code (see shaders/activation.wgsl).
fn act_code(act: Option<crate::UnaryOp>) -> u8 {
    match act {
        None => 0,
        Some(crate::UnaryOp::Relu) => 1,
        Some(crate::UnaryOp::Sigmoid) => 2,
        Some(_) => 3,
    }
}

/// A buffer the outputs of a plan (`floats` in all) are copied into and read back from.
pub(crate) fn readback_buffer(ctx: &Context, floats: usize) -> Result<wgpu::Buffer> {
    ctx.buffer(
        "plan readback",
        (floats * 4) as u64,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    )
}

/// Whether a reduction (or softmax) of `rows` rows of length `len` runs one workgroup per
/// row: when the rows are long and too few to keep the device busy one invocation each.
fn cooperate(rows: usize, len: usize) -> bool {
    len >= 256 && rows <= 4096
}

/// Parameters of the broadcasting binary kernel: operand strides over the output's axes.
fn broadcast_params(
    n: usize,
    out: &[usize],
    a: &[usize],
    b: &[usize],
    op: usize,
    alpha: f32,
) -> Result<Params> {
    let p = Params::new().u(n);
    if a == out && b == out {
        return Ok(p.u(0).u(op).f(alpha));
    }
    if out.len() > 8 {
        return Err(Error::Invalid(format!(
            "broadcasting supports rank ≤ 8, got output shape {out:?}"
        )));
    }
    let operand = |x: &[usize]| -> Vec<usize> {
        let st = strides(x);
        let off = out.len() - x.len();
        (0..out.len())
            .map(|ax| {
                if ax < off || x[ax - off] == 1 {
                    0
                } else {
                    st[ax - off]
                }
            })
            .collect()
    };
    Ok(p.u(out.len())
        .u(op)
        .f(alpha)
        .vec8(out)
        .vec8(&operand(a))
        .vec8(&operand(b)))
}

/// The matmul kernel for `op(A)·op(B)` of sizes `[m, n, k]`, with `[a_batch, b_batch,
/// batch, zsum]` (floats between batch items of A and B, number of outputs, and the number
/// of items summed into one output when `batch` is 1).
fn matmul_dispatch(
    ctx: &Context,
    [m, nn, k]: [usize; 3],
    [a_batch, b_batch, batch, zsum]: [usize; 4],
    ta: bool,
    tb: bool,
    gather: Gather,
) -> Result<(Kernel, Params, [u32; 3])> {
    // vec4 loads need the axis contiguous in memory to be a multiple of 4 (and the operand
    // stored as a matrix).
    let va = (if ta { m } else { k }) % 4 == 0 && !matches!(gather, Gather::Transposed(_));
    let vb = (if tb { k } else { nn }) % 4 == 0 && gather == Gather::None;
    // On CPU adapters with fixed-size subgroups, the subgroup-broadcast kernel, with the
    // smallest block of rows that covers M (or 64).
    let sg = ctx
        .subgroup
        .filter(|&s| ctx.is_cpu() && (s == 8 || s == 16));
    let rows = |s: u32| {
        crate::kernels::SUBGROUP_BLOCKS
            .iter()
            .filter(|b| b.0 == s)
            .map(|b| b.1 as usize)
            .find(|&r| r >= m)
            .unwrap_or(64)
    };
    let groups = match sg {
        Some(s) => [nn.div_ceil(4 * s as usize), m.div_ceil(rows(s)), batch],
        None => [nn.div_ceil(64), m.div_ceil(64), batch],
    };
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    if groups.iter().any(|&g| g > max) {
        return Err(Error::Invalid(format!(
            "matmul: {m}×{k} · {k}×{nn} (batch {batch}) needs workgroups {groups:?}, above the adapter's {max} per dimension"
        )));
    }
    let p = Params::new()
        .u(m)
        .u(nn)
        .u(k)
        .u(zsum)
        .u(a_batch)
        .u(b_batch)
        .f(1.0); // alpha
    let kernel = match sg {
        Some(s) => Kernel::MatmulSubgroup {
            ta,
            tb,
            vb,
            sg: s as u8,
            rows: rows(s) as u8,
            epi: 0,
            act: 0,
            gather,
        },
        None => Kernel::Matmul {
            ta,
            tb,
            va,
            vb,
            epi: 0,
            act: 0,
            gather,
        },
    };
    Ok((kernel, p, groups.map(|g| g.max(1) as u32)))
}
