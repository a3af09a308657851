//! Lowering: the fused graph becomes a list of dispatches (kernel, parameter block,
//! buffers, workgroups), in graph order, then the gradient copies, the learner's updates
//! and the state assignments. Buffers are named abstractly ([`Buf`]); emission binds them.

use super::fuse::Fusions;
use super::grad_arena::GradArena;
use super::kernel_choice::{matmul_dispatch, node_dispatch, ScatterChunks, Target};
use super::liveness::{Liveness, PlanGraph};
use super::scan;
use super::stepwise::{self, Loop};
use super::summary::Role;
use super::ArenaUpdate;
use crate::graph::{BinaryOp, Op, UnaryOp};
use crate::kernels::contract::{UnaryParams, UpdateParams};
use crate::kernels::{groups_1d, Act, Epilogue, Gather, Kernel, Params};
use crate::ops::elementwise::UnaryCode;
use crate::tensor::fill_params;
use crate::{Fill, Result};

/// A buffer a dispatch binds, before buffers exist.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Buf {
    /// The buffer holding node `.0`'s value.
    Node(usize),
    /// `len` floats of update `update`'s gradient arena from byte `offset`.
    Arena {
        update: usize,
        offset: u64,
        len: usize,
    },
    /// Update `.0`'s range of its gradient arena.
    UpdateGrads(usize),
    /// Update `.0`'s hyper-parameter uniform.
    UpdateHyper(usize),
    /// Update `.0`'s range of its target `.1` (the parameters, then the learner state).
    UpdateTarget(usize, usize),
    /// Update `.0`'s numerics guard words.
    UpdateGuard(usize),
    /// The per-op numerics check's buffer (`ContextOptions::check_numerics`).
    Numerics,
    /// The executor's per-call uniform (step counter).
    Runtime,
    /// `len` floats from float `offset` of scratch buffer `part` of node `node`'s kernels
    /// (a stepwise LSTM's carries and products; emission sizes each to its largest use).
    Scratch {
        node: usize,
        part: u8,
        offset: usize,
        len: usize,
    },
}

/// One dispatch, as lowering decides it.
pub(crate) struct Dispatch {
    pub kernel: Kernel,
    pub params: Params,
    pub buffers: Vec<Buf>,
    pub groups: [u32; 3],
    /// Kernel and output shape, for profiles.
    pub label: String,
    pub role: Role,
    /// Shape of what it writes.
    pub output: Vec<usize>,
    /// Folded scalings of the operands (1 without).
    pub alpha: f32,
}

/// What a node's epilogue adds to its producer's dispatch: the epilogue, the activation
/// and the side input (bias, or the activation's output for its gradient).
type EpilogueInput = (Epilogue, Act, crate::NodeId);

/// Every dispatch of the plan, in the order they run, and the loops among them (a loop's
/// body is replayed for every step).
pub(crate) fn dispatches(
    g: &PlanGraph,
    target: &Target,
    live: &Liveness,
    f: &Fusions,
    arena: &GradArena,
    updates: &[ArenaUpdate<'_>],
    assigns: &[(crate::NodeId, crate::NodeId)],
) -> Result<(Vec<Dispatch>, Vec<Loop>)> {
    let absorbed = f.absorbed();
    let mut out = Vec::new();
    let mut loops = Vec::new();
    scan::check_reads(g, live)?;
    for i in live.needed().filter(|&i| !f.skipped(&absorbed, i)) {
        if live.in_scan(i) {
            continue; // run in its scan's loop
        }
        if let Op::Scan(spec) = g.op(i) {
            scan::lower(g, target, live, f, i, spec, &mut out, &mut loops)?;
            continue;
        }
        if stepwise::wanted(target, g, i) {
            stepwise::lower(target, g, i, &|j| f.bound(j).0, &mut out, &mut loops)?;
            if target.check_numerics {
                out.push(finite_check(g, i));
            }
            continue;
        }
        node_dispatches(g, target, live, f, i, &mut out)?;
    }
    for &(x, place) in &arena.copies {
        let n = g.numel(x.0);
        let to = Buf::Arena {
            update: place.update,
            offset: place.offset,
            len: n,
        };
        let label = format!("gradient copy [{n}]");
        out.push(copy_dispatch(
            n,
            vec![Buf::Node(x.0), to],
            Role::GradientCopy,
            label,
        ));
    }
    // Every update's check pass, then every update's apply pass (optim.wgsl's guard).
    for check in [true, false] {
        for (k, u) in updates.iter().enumerate() {
            out.push(update_dispatch(g, k, u, check));
        }
    }
    for &(state, value) in assigns {
        let n = g.numel(state.0);
        let buffers = vec![Buf::Node(value.0), Buf::Node(state.0)];
        out.push(copy_dispatch(n, buffers, Role::Assign, "assign".into()));
    }
    Ok((out, loops))
}

/// A copy of `n` floats from the first buffer to the second.
pub(super) fn copy_dispatch(n: usize, buffers: Vec<Buf>, role: Role, label: String) -> Dispatch {
    Dispatch {
        kernel: Kernel::Unary,
        params: Params::Unary(UnaryParams {
            n: n as u32,
            op: UnaryCode::Scale as u32,
            alpha: 1.0,
            _p0: 0,
        }),
        buffers,
        groups: groups_1d(n),
        label,
        role,
        output: vec![n],
        alpha: 1.0,
    }
}

/// Update `k`'s check pass (`check`) or apply pass.
fn update_dispatch(g: &PlanGraph, k: usize, u: &ArenaUpdate<'_>, check: bool) -> Dispatch {
    let mut buffers = vec![Buf::UpdateGrads(k), Buf::UpdateHyper(k)];
    buffers.extend((0..u.targets.len()).map(|t| Buf::UpdateTarget(k, t)));
    buffers.extend([Buf::Node(u.loss.0), Buf::UpdateGuard(k)]);
    let parameters = u.members.len();
    Dispatch {
        kernel: Kernel::Update {
            rule: u.rule,
            textures: false,
        },
        params: Params::Update(UpdateParams {
            n: u.len as u32,
            check: check as u32,
            run: k as u32,
            loss_n: g.numel(u.loss.0) as u32,
        }),
        buffers,
        // One invocation per vec4 of parameters.
        groups: groups_1d(u.len.div_ceil(4)),
        label: format!(
            "{:?} update {}of {parameters} parameters [{}]",
            u.rule,
            if check { "check " } else { "" },
            u.len
        ),
        role: match check {
            true => Role::UpdateCheck { parameters },
            false => Role::Update { parameters },
        },
        output: vec![u.len],
        alpha: 1.0,
    }
}

/// The dispatches of node `i` (its poison fills, then its own), with what was folded
/// into it.
pub(super) fn node_dispatches(
    g: &PlanGraph,
    target: &Target,
    live: &Liveness,
    f: &Fusions,
    i: usize,
    out: &mut Vec<Dispatch>,
) -> Result<()> {
    // A scatter-add takes several dispatches (at the top level and in scan bodies alike).
    if let Op::ScatterRows { .. } = g.op(i) {
        scatter_dispatches(g, target, f, i, out);
        return Ok(());
    }
    // A node with an epilogue runs its producer's kernel, with the bias (or the
    // activation's output) as the epilogue's side input.
    let (source, fuse): (usize, Option<EpilogueInput>) = match (f.epilogue.get(&i), g.op(i)) {
        (Some(&(m, epi)), &Op::BiasAct { b, act, .. }) => (m, Some((epi, Act::of(act), b))),
        (Some(&(m, epi)), &Op::Binary { op, a, .. }) => {
            let act = match op {
                BinaryOp::ReluGrad => UnaryOp::Relu,
                BinaryOp::SigmoidGrad => UnaryOp::Sigmoid,
                _ => UnaryOp::Tanh,
            };
            (m, Some((epi, Act::of(Some(act)), a)))
        }
        _ => (i, None),
    };
    let (mut kernel, mut params, groups, mut buffers) = match f.transposed.get(&source) {
        // The filters as A, the output gradients through the transposed window as B.
        Some(&(m, t)) => {
            let Op::Matmul { a: dy, b: w, .. } = *g.op(m) else {
                unreachable!("a transposed convolution folds a product")
            };
            let size = [t.c * t.kh * t.kw, t.c * t.h * t.w];
            let (kernel, params, groups) = matmul_dispatch(
                target,
                [g.dims[w.0][1] / (t.kh * t.kw), t.oh * t.ow, size[0]],
                [0, size[1], g.dims[dy.0][0], 1],
                false,
                true, // B's columns are the pixels, as in a forward convolution
                Gather::Transposed(t),
            )?;
            (
                kernel,
                params,
                groups,
                vec![Buf::Node(w.0), Buf::Node(dy.0)],
            )
        }
        None => {
            let Some((kernel, params, groups)) = node_dispatch(target, g, source)? else {
                return Ok(());
            };
            let buffers = g.nodes[source]
                .op
                .inputs()
                .iter()
                .map(|&j| Buf::Node(f.bound(j).0))
                .collect();
            (kernel, params, groups, buffers)
        }
    };
    let inputs = g.nodes[source].op.inputs();
    // A product whose B is a gathered im2col reads the images, one per batch item.
    let gather = inputs
        .iter()
        .find_map(|j| f.gathered.get(&j.0).map(|x| (j.0, x.1)));
    // Folded scalings of the operands scale the product.
    let alpha: f32 = inputs.iter().map(|&j| f.alpha_of(live, j)).product();
    if let Params::Product(p) = &mut params {
        p.alpha *= alpha;
        if let Some((cols, win)) = gather {
            if g.dims[cols].len() == 3 {
                // The images, one per batch item.
                p.b_batch = (win.c * win.h * win.w) as u32;
            }
        }
    }
    if let Some((_, win)) = gather {
        if let Kernel::Matmul { gather, vb, .. } | Kernel::MatmulSubgroup { gather, vb, .. } =
            &mut kernel
        {
            (*gather, *vb) = (Gather::Im2col(win), false);
        }
    }
    if let Op::Expand { .. } | Op::Permute { .. } = g.op(i) {
        buffers.push(buffers[0]);
    }
    let sibling = f.sibling.get(&i).copied();
    if target.poison {
        for k in std::iter::once(i).chain(sibling) {
            out.push(poison_dispatch(g, k));
        }
    }
    buffers.push(Buf::Node(i));
    if let Some(j) = sibling {
        kernel = Kernel::CeForwardError;
        buffers.push(Buf::Node(j));
    }
    if kernel == Kernel::Dropout {
        buffers.push(Buf::Runtime);
    }
    if let Kernel::Col2Im(_, act) | Kernel::MaxPoolGrad(_, act) | Kernel::AvgPoolGrad(_, act) =
        &mut kernel
    {
        match fuse {
            Some((_, a, output)) => {
                *act = a;
                buffers.push(Buf::Node(output.0));
            }
            None => buffers.push(buffers[0]),
        }
    }
    if let Kernel::Matmul { epi, act, .. } | Kernel::MatmulSubgroup { epi, act, .. } = &mut kernel {
        match fuse {
            Some((e, a, bias)) => {
                (*epi, *act) = (e, a);
                buffers.push(Buf::Node(bias.0));
            }
            None => buffers.push(buffers[0]),
        }
    }
    out.push(Dispatch {
        kernel,
        params,
        buffers,
        groups,
        label: format!("{kernel:?} {:?}", g.dims[i]),
        role: Role::Compute(crate::NodeId::at(i)),
        output: g.dims[i].clone(),
        alpha,
    });
    if target.check_numerics {
        for k in std::iter::once(i).chain(sibling) {
            out.push(finite_check(g, k));
        }
    }
    Ok(())
}

/// A table gradient's scatter-add: runs of indices summed into zeroed copies of the table,
/// then the copies summed ([`ScatterChunks`]); straight into the zeroed output when one run
/// is enough.
fn scatter_dispatches(
    g: &PlanGraph,
    target: &Target,
    f: &Fusions,
    i: usize,
    out: &mut Vec<Dispatch>,
) {
    let Op::ScatterRows { indices, g: rows } = *g.op(i) else {
        unreachable!("scatter_dispatches takes a scatter-add")
    };
    let s = ScatterChunks::of(g, i);
    if target.poison {
        out.push(poison_dispatch(g, i));
    }
    let (idx, grad, this) = (
        Buf::Node(f.bound(indices).0),
        Buf::Node(f.bound(rows).0),
        Buf::Node(i),
    );
    let dims = &g.dims[i];
    let dispatch = |kernel, buffers, n: usize, label: String| Dispatch {
        kernel,
        params: s.params(),
        buffers,
        groups: groups_1d(n),
        label,
        role: Role::Compute(crate::NodeId::at(i)),
        output: dims.clone(),
        alpha: 1.0,
    };
    // The sums start from zeros, filled in parallel.
    let zeros = |buf: Buf, n: usize| Dispatch {
        kernel: Kernel::Fill,
        params: fill_params(n, Fill::Const(0.0)),
        buffers: vec![buf],
        groups: groups_1d(n),
        label: format!("zeros [{n}]"),
        role: Role::Compute(crate::NodeId::at(i)),
        output: vec![n],
        alpha: 1.0,
    };
    let table = s.rows * s.inner;
    if s.chunks == 1 {
        out.push(zeros(this, table));
        let label = format!("ScatterRows {dims:?}");
        let buffers = vec![idx, grad, this];
        out.push(dispatch(Kernel::ScatterRows, buffers, s.inner, label));
    } else {
        let len = s.chunks * table;
        let copies = Buf::Scratch {
            node: i,
            part: 0,
            offset: 0,
            len,
        };
        out.push(zeros(copies, len));
        let label = format!("ScatterRows {dims:?} in {} runs", s.chunks);
        let buffers = vec![idx, grad, copies];
        out.push(dispatch(
            Kernel::ScatterRows,
            buffers,
            s.chunks * s.inner,
            label,
        ));
        let label = format!("ScatterRowsSum {dims:?}");
        out.push(dispatch(
            Kernel::ScatterRowsSum,
            vec![copies, this],
            table,
            label,
        ));
    }
    if target.check_numerics {
        out.push(finite_check(g, i));
    }
}

/// Fills node `k`'s buffer with NaN before it is written (`ContextOptions::poison`).
pub(super) fn poison_dispatch(g: &PlanGraph, k: usize) -> Dispatch {
    Dispatch {
        kernel: Kernel::Fill,
        params: fill_params(g.numel(k), Fill::Nan),
        buffers: vec![Buf::Node(k)],
        groups: groups_1d(g.numel(k)),
        label: "poison".into(),
        role: Role::Poison,
        output: g.dims[k].clone(),
        alpha: 1.0,
    }
}

/// The per-op numerics check of node `k`'s value (`ContextOptions::check_numerics`).
fn finite_check(g: &PlanGraph, k: usize) -> Dispatch {
    let mut params = fill_params(g.numel(k), Fill::Nan);
    if let Params::Fill(p) = &mut params {
        p.op = k as u32;
    }
    Dispatch {
        kernel: Kernel::FiniteCheck,
        params,
        buffers: vec![Buf::Node(k), Buf::Numerics],
        groups: groups_1d(g.numel(k)),
        label: "finite check".into(),
        role: Role::NumericsCheck,
        output: g.dims[k].clone(),
        alpha: 1.0,
    }
}
