//! Kernel choice: for one node at one batch size, the kernel, its parameter block and its
//! workgroup counts. Depends on the adapter only through [`Target`], so it runs without a
//! GPU.

use super::liveness::PlanGraph;
use crate::device::{Context, LstmKernels};
use crate::graph::{AttnPart, NodeId, Op, ReduceOp};
use crate::kernels::contract::{
    AttnParams, BinaryParams, CopyParams, FillParams, LossParams, ProductParams, ReduceParams,
    ScanParams, SeqParams, SoftmaxParams, UnaryParams, BINARY_FIRST,
};
use crate::kernels::{
    groups_1d, groups_per_item, Act, Epilogue, Gather, Kernel, Params, SUBGROUP_BLOCKS,
};
use crate::ops::elementwise::UnaryCode;
use crate::shape::strides;
use crate::{Error, Result};

/// What kernel choice needs to know of the adapter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    /// The subgroup size where products use the subgroup-broadcast kernel (CPU adapters
    /// with fixed 8- or 16-lane subgroups).
    pub subgroup: Option<u32>,
    /// The adapter's limit of workgroups per dimension.
    pub max_groups: usize,
    /// Fill each written buffer with NaN first (`ContextOptions::poison`).
    pub poison: bool,
    /// Check each value for NaN and infinities after it is written
    /// (`ContextOptions::check_numerics`).
    pub check_numerics: bool,
    /// The hidden size from which LSTMs run one step at a time (plan/stepwise.rs); `None`:
    /// never.
    pub lstm_steps_from: Option<usize>,
}

impl Target {
    /// The facts of `ctx`'s adapter.
    pub fn of(ctx: &Context) -> Target {
        Target {
            subgroup: ctx
                .subgroup
                .filter(|&s| ctx.is_cpu() && (s == 8 || s == 16)),
            max_groups: ctx.limits.max_compute_workgroups_per_dimension as usize,
            poison: ctx.options.poison,
            check_numerics: ctx.options.check_numerics,
            lstm_steps_from: match ctx.options.lstm {
                LstmKernels::Auto => ctx.is_cpu().then_some(32),
                LstmKernels::Scan => None,
                LstmKernels::Steps => Some(1),
            },
        }
    }
}

/// A kernel, its parameter block and its workgroup counts.
pub(crate) type Choice = (Kernel, Params, [u32; 3]);

/// `[outer, len, inner]` around an axis.
fn around(x: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer: usize = x[..axis].iter().product();
    let inner: usize = x[axis + 1..].iter().product();
    (outer, x[axis], inner)
}

/// The kernel computing node `i`; `None` for nodes that need no dispatch (leaves, reshapes
/// and mode switches).
pub(crate) fn node_dispatch(t: &Target, g: &PlanGraph, i: usize) -> Result<Option<Choice>> {
    let out = &g.dims[i];
    let n: usize = out.iter().product();
    let d = |x: NodeId| &g.dims[x.0];
    Ok(Some(match *g.op(i) {
        Op::Input { .. }
        | Op::Param { .. }
        | Op::Const { .. }
        | Op::Reshape { .. }
        | Op::Mode { .. }
        // Scans are lowered by plan/scan.rs, which also writes their step values; a scan's
        // final value shares the carry's buffer.
        | Op::StepValue
        | Op::Scan(_)
        | Op::ScanFinal { .. } => return Ok(None),
        Op::Im2Col { .. } | Op::Col2Im { .. } | Op::Pool { .. } | Op::PoolGrad { .. } => {
            window_dispatch(g, i)
        }
        Op::Concat { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Permute { .. }
        | Op::OneHot { .. }
        | Op::GatherRows { .. }
        | Op::ScatterRows { .. } => movement_dispatch(g, i)?,
        Op::Dropout { p, seed, .. } => {
            let params = Params::Fill(FillParams {
                n: n as u32,
                seed_lo: seed as u32,
                seed_hi: (seed >> 32) as u32,
                a: p,
                b: 1.0 / (1.0 - p),
                ..Default::default()
            });
            (Kernel::Dropout, params, groups_1d(n))
        }
        Op::Unary { op, .. } => {
            let (code, alpha) = UnaryCode::of(op);
            let params = Params::Unary(UnaryParams {
                n: n as u32,
                op: code as u32,
                alpha,
                ..Default::default()
            });
            (Kernel::Unary, params, groups_1d(n))
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
        Op::Matmul { .. } | Op::MatmulSumBatch { .. } => product_dispatch(t, g, i)?,
        Op::BiasAct { axis, act, .. } => {
            let (_, c, inner) = around(out, axis);
            let (c, inner, act) = (c as u32, inner as u32, Act::of(act));
            (
                Kernel::BiasAct { c, inner, act },
                Params::count(n),
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
            (kernel, Params::count(len), groups)
        }
        Op::Reduce { op, x, axis } => {
            let (outer, len, inner) = around(d(x), axis);
            let params = Params::Reduce(ReduceParams {
                outer: outer as u32,
                len: len as u32,
                inner: inner as u32,
                op: op.code(),
            });
            if cooperate(outer * inner, len) && op != ReduceOp::Argmax {
                (Kernel::ReduceWg, params, groups_per_item(outer * inner))
            } else {
                (Kernel::Reduce, params, groups_1d(outer * inner))
            }
        }
        Op::Softmax { x, axis, log } => {
            let (outer, len, inner) = around(d(x), axis);
            let params = Params::Softmax(SoftmaxParams {
                outer: outer as u32,
                len: len as u32,
                inner: inner as u32,
                log: log as u32,
            });
            if cooperate(outer * inner, len) {
                (Kernel::SoftmaxWg, params, groups_per_item(outer * inner))
            } else {
                (Kernel::Softmax, params, groups_1d(outer * inner))
            }
        }
        Op::CrossEntropy { .. } | Op::CrossEntropyGrad { .. } | Op::ClassError { .. } => {
            loss_dispatch(g, i)
        }
        Op::SeqPick { .. }
        | Op::SeqPlace { .. }
        | Op::SeqReduce { .. }
        | Op::SeqBroadcast { .. }
        | Op::SeqShift { .. }
        | Op::SeqMask { .. }
        | Op::SeqWhere { .. }
        | Op::SeqGather { .. }
        | Op::SeqScatter { .. } => sequence_dispatch(g, i),
        Op::Attention { .. } => attention_dispatch(g, i),
        Op::GruScan { .. }
        | Op::GruScanGrad { .. }
        | Op::RnnScan { .. }
        | Op::RnnScanGrad { .. }
        | Op::LstmScan { .. }
        | Op::LstmScanGrad { .. } => scan_dispatch(g, i),
    }))
}

/// Window kernels take their geometry as pipeline constants; only the batch size varies.
fn window_dispatch(g: &PlanGraph, i: usize) -> Choice {
    let n: usize = g.dims[i].iter().product();
    let batch = |x: NodeId| Params::count(g.dims[x.0][0]);
    match *g.op(i) {
        // One invocation per window (kh·kw outputs).
        Op::Im2Col { x, win } => (
            Kernel::Im2Col(win),
            batch(x),
            groups_1d(n / (win.kh * win.kw)),
        ),
        Op::Col2Im { win, .. } => (
            Kernel::Col2Im(win, Act::None),
            Params::count(g.dims[i][0]),
            groups_1d(n),
        ),
        Op::Pool { x, win, max } => {
            let k = if max {
                Kernel::MaxPool(win)
            } else {
                Kernel::AvgPool(win)
            };
            (k, batch(x), groups_1d(n))
        }
        Op::PoolGrad { x, win, max, .. } => {
            let k = if max {
                Kernel::MaxPoolGrad(win, Act::None)
            } else {
                Kernel::AvgPoolGrad(win, Act::None)
            };
            // One invocation per pixel, or per tile when the windows tile the image.
            let per = if win.tiles() {
                let tiles = win.h.div_ceil(win.kh) * win.w.div_ceil(win.kw);
                n / (win.h * win.w) * tiles
            } else {
                n
            };
            (k, batch(x), groups_1d(per))
        }
        _ => unreachable!("window_dispatch takes window ops"),
    }
}

/// Concat, slice, pad, permutation and one-hot.
fn movement_dispatch(g: &PlanGraph, i: usize) -> Result<Choice> {
    let out = &g.dims[i];
    let n: usize = out.iter().product();
    let d = |x: NodeId| &g.dims[x.0];
    // [outer, len, inner] of the output around `axis`, with the operand's length there.
    let axis_params = |axis: usize, len_a: usize, begin: usize| {
        let (outer, len_out, inner) = around(out, axis);
        Params::Copy(CopyParams {
            outer: outer as u32,
            len_a: len_a as u32,
            len_out: len_out as u32,
            inner: inner as u32,
            begin: begin as u32,
            ..Default::default()
        })
    };
    Ok(match *g.op(i) {
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
            let params = Params::Binary(BinaryParams {
                n: n as u32,
                rank: out.len() as u32,
                op: BINARY_FIRST,
                alpha: 1.0,
                dims: eight(out),
                sa: eight(&sa),
                sb: eight(&sa),
            });
            (Kernel::Binary, params, groups_1d(n))
        }
        Op::OneHot { .. } => {
            let classes = out[out.len() - 1];
            let params = Params::Copy(CopyParams {
                outer: (n / classes) as u32,
                len_out: classes as u32,
                inner: 1,
                ..Default::default()
            });
            (Kernel::OneHot, params, groups_1d(n))
        }
        // outer: the indices, len_a: the table's rows, inner: a row's length.
        Op::GatherRows { table, indices } => {
            let params = Params::Copy(CopyParams {
                outer: d(indices).iter().product::<usize>() as u32,
                len_a: d(table)[0] as u32,
                inner: d(table)[d(table).len() - 1] as u32,
                ..Default::default()
            });
            (Kernel::GatherRows, params, groups_1d(n))
        }
        // Its runs, zeros and sums take several dispatches: lower.rs's scatter_dispatches.
        Op::ScatterRows { .. } => unreachable!("lower.rs lowers scatter-adds"),
        _ => unreachable!("movement_dispatch takes movement ops"),
    })
}

/// How a table gradient's scatter-add ([`Op::ScatterRows`]) splits its indices: `chunks`
/// runs of `per_chunk` consecutive indices, each summed by its own invocations into its own
/// copy of the table (one per row element), then the copies summed in order. Deterministic,
/// and the work grows with indices × row length (+ copies × table), not indices × table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScatterChunks {
    /// The indices.
    pub tokens: usize,
    /// The table's rows.
    pub rows: usize,
    /// A row's length.
    pub inner: usize,
    /// Runs of indices, each summed into its own copy of the table (1: into the output).
    pub chunks: usize,
    /// Indices per run (the last may be shorter).
    pub per_chunk: usize,
}

impl ScatterChunks {
    /// Indices per run when the copies fit; runs never exceed [`Self::MAX_COPIES`] copies.
    const RUN: usize = 64;
    /// The table copies' floats at most (16 MiB).
    const MAX_COPY_FLOATS: usize = 1 << 22;
    const MAX_COPIES: usize = 256;

    /// The split of scatter-add node `i`.
    pub(crate) fn of(g: &PlanGraph, i: usize) -> ScatterChunks {
        let Op::ScatterRows { indices, .. } = *g.op(i) else {
            unreachable!("ScatterChunks::of takes a scatter-add")
        };
        let out = &g.dims[i];
        let (rows, inner) = (out[0], out[out.len() - 1]);
        let tokens: usize = g.dims[indices.0].iter().product();
        let fit = (Self::MAX_COPY_FLOATS / (rows * inner).max(1)).clamp(1, Self::MAX_COPIES);
        let chunks = tokens.div_ceil(Self::RUN).clamp(1, fit);
        ScatterChunks {
            tokens,
            rows,
            inner,
            chunks,
            per_chunk: tokens.div_ceil(chunks).max(1),
        }
    }

    /// The copy shader's parameters: outer the indices, len_a the rows, inner a row's
    /// length, len_out the runs and begin the indices per run.
    pub(crate) fn params(&self) -> Params {
        Params::Copy(CopyParams {
            outer: self.tokens as u32,
            len_a: self.rows as u32,
            inner: self.inner as u32,
            len_out: self.chunks as u32,
            begin: self.per_chunk as u32,
            ..Default::default()
        })
    }
}

/// Matrix products: stored operands, or a shared matrix's gradient summed over the batch.
fn product_dispatch(t: &Target, g: &PlanGraph, i: usize) -> Result<Choice> {
    let out = &g.dims[i];
    let d = |x: NodeId| &g.dims[x.0];
    match *g.op(i) {
        Op::Matmul { a, b, ta, tb } => {
            let (da, db) = (d(a), d(b));
            let (ra, ca) = (da[da.len() - 2], da[da.len() - 1]);
            let (rb, cb) = (db[db.len() - 2], db[db.len() - 1]);
            let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
            let nn = if tb { rb } else { cb };
            let a_batch = if da.len() == 3 { ra * ca } else { 0 };
            let b_batch = if db.len() == 3 { rb * cb } else { 0 };
            let batch = if out.len() == 3 { out[0] } else { 1 };
            let items = [a_batch, b_batch, batch, 1];
            matmul_dispatch(t, [m, nn, k], items, ta, tb, Gather::None)
        }
        Op::MatmulSumBatch { p, q, tp, tq } => {
            let (dp, dq) = (d(p), d(q));
            if tp && !tq {
                // The stored [batch, r, ·] operands read as [batch·r, ·] matrices: pᵀ·q is
                // one product whose inner axis runs over batch and rows.
                let k = dp[0] * dp[1];
                matmul_dispatch(
                    t,
                    [dp[2], dq[2], k],
                    [0, 0, 1, 1],
                    true,
                    false,
                    Gather::None,
                )
            } else {
                // Otherwise the kernel accumulates over the batch items itself.
                let (m, k) = if tp { (dp[2], dp[1]) } else { (dp[1], dp[2]) };
                let nn = if tq { dq[1] } else { dq[2] };
                let items = [dp[1] * dp[2], dq[1] * dq[2], 1, dp[0]];
                matmul_dispatch(t, [m, nn, k], items, tp, tq, Gather::None)
            }
        }
        _ => unreachable!("product_dispatch takes products"),
    }
}

/// Sequence ops: one invocation per output element; the parameter block gives the batch,
/// the padded steps and the elements of one step.
fn sequence_dispatch(g: &PlanGraph, i: usize) -> Choice {
    let batch = g.sizes.batch;
    // The padded steps of the sequence operand: the input for the ops that end the axis,
    // the output for the others.
    let steps = match *g.op(i) {
        Op::SeqPick { x, .. } | Op::SeqReduce { x, .. } => g.dims[x.0][1],
        Op::SeqWhere { cond, .. } => g.dims[cond.0][1],
        _ => g.dims[i][1],
    };
    let seq = |x: NodeId| g.dims[x.0][2..].iter().product::<usize>();
    let step = |x: NodeId| g.dims[x.0][1..].iter().product::<usize>();
    let (kernel, inner) = match *g.op(i) {
        Op::SeqPick { x, last, .. } => (Kernel::SeqPick { last }, seq(x)),
        Op::SeqPlace { g: v, last, .. } => (Kernel::SeqPlace { last }, step(v)),
        Op::SeqReduce { x, max, .. } => (Kernel::SeqReduce { max }, seq(x)),
        Op::SeqBroadcast { v, .. } => (Kernel::SeqBroadcast, step(v)),
        Op::SeqShift { x, future, .. } => (Kernel::SeqShift { future }, seq(x)),
        Op::SeqMask { begin, end, .. } => (Kernel::SeqMask { begin, end }, 1),
        Op::SeqWhere { count, .. } => (Kernel::SeqWhere { count }, 1),
        Op::SeqGather { x, .. } => (Kernel::SeqGather, seq(x)),
        Op::SeqScatter { g: v, .. } => (Kernel::SeqScatter, seq(v)),
        _ => unreachable!("sequence_dispatch takes sequence ops"),
    };
    let params = Params::Seq(SeqParams {
        batch: batch as u32,
        steps: steps as u32,
        inner: inner as u32,
        _p0: 0,
    });
    (kernel, params, groups_1d(g.numel(i)))
}

/// Attention: one invocation per output element, or per query row for the weights. The
/// steps come from the weights-shaped operand or output (`[batch, seq_q, seq_k]`).
fn attention_dispatch(g: &PlanGraph, i: usize) -> Choice {
    let Op::Attention { part, args, .. } = *g.op(i) else {
        unreachable!("attention_dispatch takes attention");
    };
    let d = |x: NodeId| &g.dims[x.0];
    // The [batch, seq_q, seq_k] tensor of the part, and its feature width.
    let (qk, width) = match part {
        AttnPart::Weights => (d(NodeId::at(i)), d(args[0])[2]),
        AttnPart::Apply => (d(args[0]), d(args[1])[2]),
        AttnPart::ApplyGradAlpha => (d(NodeId::at(i)), d(args[1])[2]),
        AttnPart::ApplyGradValues => (d(args[0]), d(args[1])[2]),
        AttnPart::ScoreGrad => (d(args[0]), 1),
        AttnPart::GradQ | AttnPart::GradK | AttnPart::GradV => (d(args[3]), d(args[0])[2]),
    };
    let params = Params::Attn(AttnParams {
        batch: g.sizes.batch as u32,
        steps_q: qk[1] as u32,
        steps_k: qk[2] as u32,
        width: width as u32,
    });
    let n = match part {
        AttnPart::Weights => g.sizes.batch * qk[1],
        _ => g.numel(i),
    };
    (Kernel::Attention(part), params, groups_1d(n))
}

/// Recurrent scans and their reverse scans: one workgroup per sequence, or per
/// [`lstm_group_seqs`] sequences for the LSTM's.
fn scan_dispatch(g: &PlanGraph, i: usize) -> Choice {
    let d = |x: NodeId| &g.dims[x.0];
    let (kernel, u) = match *g.op(i) {
        Op::GruScan { u, backwards, .. } => (Kernel::GruForward { backwards }, u),
        Op::GruScanGrad { u, backwards, .. } => (Kernel::GruBackward { backwards }, u),
        Op::RnnScan { u, backwards, .. } => (Kernel::RnnForward { backwards }, u),
        Op::RnnScanGrad { u, backwards, .. } => (Kernel::RnnBackward { backwards }, u),
        Op::LstmScan {
            u,
            backwards,
            forget_bias,
            ..
        } => {
            let k = Kernel::LstmForward {
                backwards,
                forget_bias: forget_bias.to_bits(),
                group_seqs: lstm_group_seqs(d(u)[0]),
            };
            (k, u)
        }
        Op::LstmScanGrad {
            u,
            backwards,
            forget_bias,
            ..
        } => {
            let k = Kernel::LstmBackward {
                backwards,
                forget_bias: forget_bias.to_bits(),
                group_seqs: lstm_group_seqs(d(u)[0]),
            };
            (k, u)
        }
        _ => unreachable!("scan_dispatch takes recurrent scans"),
    };
    let params = Params::Scan(ScanParams {
        batch: g.sizes.batch as u32,
        // The scans' outputs are [batch, steps, ..].
        steps: g.dims[i][1] as u32,
        hidden: d(u)[0] as u32,
        step: 0,
    });
    let per_group = match kernel {
        Kernel::LstmForward { group_seqs, .. } | Kernel::LstmBackward { group_seqs, .. } => {
            group_seqs as usize
        }
        _ => 1,
    };
    let groups = groups_per_item(g.sizes.batch.div_ceil(per_group));
    (kernel, params, groups)
}

/// Sequences one workgroup of the LSTM scans owns for `hidden` units: 4, or 2 above 256
/// units (recurrence.wgsl keeps sequences × hidden ≤ 1024 states in workgroup memory).
fn lstm_group_seqs(hidden: usize) -> u32 {
    if hidden <= 256 {
        4
    } else {
        2
    }
}

/// Cross-entropy, its gradient and classification error: one invocation per row.
fn loss_dispatch(g: &PlanGraph, i: usize) -> Choice {
    let (Op::CrossEntropy { z, .. } | Op::CrossEntropyGrad { z, .. } | Op::ClassError { z, .. }) =
        *g.op(i)
    else {
        unreachable!("loss_dispatch takes losses")
    };
    let dz = &g.dims[z.0];
    let classes = dz[dz.len() - 1];
    let rows = dz.iter().product::<usize>() / classes;
    let (kernel, scalar_g, scale) = match *g.op(i) {
        Op::CrossEntropy { .. } => (Kernel::CeForward, false, 1.0),
        Op::CrossEntropyGrad { scalar_g, mean, .. } => {
            let scale = if mean { 1.0 / rows as f32 } else { 1.0 };
            (Kernel::CeBackward, scalar_g, scale)
        }
        _ => (Kernel::ClassError, false, 1.0),
    };
    let params = Params::Loss(LossParams {
        rows: rows as u32,
        classes: classes as u32,
        g_scalar: scalar_g as u32,
        g_scale: scale,
    });
    (kernel, params, groups_1d(rows))
}

/// Up to 8 values as eight `u32`s, zero-filled.
fn eight(v: &[usize]) -> [u32; 8] {
    let mut a = [0u32; 8];
    for (k, &x) in v.iter().enumerate() {
        a[k] = x as u32;
    }
    a
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
    op: u32,
    alpha: f32,
) -> Result<Params> {
    let mut p = BinaryParams {
        n: n as u32,
        op,
        alpha,
        ..Default::default()
    };
    if a == out && b == out {
        return Ok(Params::Binary(p));
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
    p.rank = out.len() as u32;
    (p.dims, p.sa, p.sb) = (eight(out), eight(&operand(a)), eight(&operand(b)));
    Ok(Params::Binary(p))
}

/// Multiply-adds (all batch items together) from which a product on a CPU adapter takes the
/// 64-row block. lavapipe compiles a 64-row kernel 3–4× slower than a 32-row one (about a
/// second each with Mesa's cache warm, several without), and only large products run faster
/// on it: 1.3–1.6× from 512³, while the batch-64 training steps of the MNIST models took the
/// same time (MLP) or 5–7% longer (CNN) on 32-row blocks, and their first step came 2.5×
/// sooner (benches/RESULTS.md, 2026-12-07 third session).
const LARGE_PRODUCT: usize = 1 << 26;

/// The matmul kernel for `op(A)·op(B)` of sizes `[m, n, k]`, with `[a_batch, b_batch,
/// batch, zsum]` (floats between batch items of A and B, number of outputs, and the number
/// of items summed into one output when `batch` is 1).
pub(crate) fn matmul_dispatch(
    t: &Target,
    [m, nn, k]: [usize; 3],
    [a_batch, b_batch, batch, zsum]: [usize; 4],
    ta: bool,
    tb: bool,
    gather: Gather,
) -> Result<Choice> {
    // vec4 loads need the axis contiguous in memory to be a multiple of 4 (and the operand
    // stored as a matrix).
    let va = (if ta { m } else { k }) % 4 == 0 && !matches!(gather, Gather::Transposed(_));
    let vb = (if tb { k } else { nn }) % 4 == 0 && gather == Gather::None;
    // With subgroups, the smallest block of rows that covers M, at most 32 rows below
    // `LARGE_PRODUCT` multiply-adds and 64 from there.
    let work = m * nn * k * batch.max(zsum).max(1);
    let tallest = if work >= LARGE_PRODUCT { 64 } else { 32 };
    let rows = |s: u32| {
        SUBGROUP_BLOCKS
            .iter()
            .filter(|b| b.0 == s)
            .map(|b| b.1 as usize)
            .find(|&r| r >= m.min(tallest))
            .unwrap_or(64)
    };
    let groups = match t.subgroup {
        Some(s) => [nn.div_ceil(4 * s as usize), m.div_ceil(rows(s)), batch],
        None => [nn.div_ceil(64), m.div_ceil(64), batch],
    };
    let max = t.max_groups;
    if groups.iter().any(|&g| g > max) {
        return Err(Error::Invalid(format!(
            "matmul: {m}×{k} · {k}×{nn} (batch {batch}) needs workgroups {groups:?}, above the adapter's {max} per dimension"
        )));
    }
    let p = Params::Product(ProductParams {
        m: m as u32,
        n: nn as u32,
        k: k as u32,
        zsum: zsum as u32,
        a_batch: a_batch as u32,
        b_batch: b_batch as u32,
        alpha: 1.0,
        _p0: 0,
    });
    let kernel = match t.subgroup {
        Some(s) => Kernel::MatmulSubgroup {
            ta,
            tb,
            vb,
            sg: s as u8,
            rows: rows(s) as u8,
            epi: Epilogue::None,
            act: Act::None,
            gather,
        },
        None => Kernel::Matmul {
            ta,
            tb,
            va,
            vb,
            epi: Epilogue::None,
            act: Act::None,
            gather,
        },
    };
    Ok((kernel, p, groups.map(|g| g.max(1) as u32)))
}
