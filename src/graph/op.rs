//! The op vocabulary: [`Op`] and its small enums, and which nodes each op reads.

use super::{Init, NodeId};

/// Elementwise unary functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// |x|
    Abs,
    /// -1, 0 or 1
    Sign,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh x
    Tanh,
    /// max(x, 0)
    Relu,
    /// ln(1 + e^x), computed stably
    Softplus,
    /// s · x
    Scale(f32),
}

/// Elementwise binary functions (with broadcasting). The discriminants are binary.wgsl's
/// codes (its prelude names them, see `kernels/contract.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BinaryOp {
    /// a + b
    Add = 0,
    /// a - b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b)
    Max,
    /// min(a, b)
    Min,
    /// 1 where a > b, else 0
    Gt,
    /// 1 where a ≥ b, else 0
    Ge,
    /// 1 where a < b, else 0
    Lt,
    /// 1 where a ≤ b, else 0
    Le,
    /// 1 where a = b, else 0
    Eq,
    /// b where a > 0, else 0 (relu's backward: a = input, b = gradient)
    ReluGrad,
    /// b·a·(1-a) (sigmoid's backward: a = output)
    SigmoidGrad,
    /// b·(1-a²) (tanh's backward: a = output)
    TanhGrad,
}

impl BinaryOp {
    /// Every binary function.
    pub const ALL: [BinaryOp; 14] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Eq,
        BinaryOp::ReluGrad,
        BinaryOp::SigmoidGrad,
        BinaryOp::TanhGrad,
    ];

    /// The kernel's op code.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

/// Reductions over one axis. The discriminants are reduce.wgsl's codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ReduceOp {
    /// Σ
    Sum = 0,
    /// Σ / n
    Mean,
    /// max
    Max,
    /// min
    Min,
    /// The index of the first maximum, as a float (no gradient).
    Argmax,
}

impl ReduceOp {
    /// Every reduction.
    pub const ALL: [ReduceOp; 5] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Argmax,
    ];

    /// The kernel's op code.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

/// The parts of additive attention ([`Op::Attention`]): the weights and their use, and the
/// pieces of their gradients. Each is one kernel of attention.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttnPart {
    /// `(q, k, v) → α: [batch, seq_q, seq_k]`, the softmax over each sequence's keys of
    /// `Σ_a v[a]·tanh(q[t, a] + k[j, a])`.
    Weights,
    /// `(α, values) → [batch, seq_q, E]`: `Σ_j α[t, j]·values[j]`.
    Apply,
    /// `(g, values) → dα`.
    ApplyGradAlpha,
    /// `(α, g) → dvalues`.
    ApplyGradValues,
    /// `(α, dα) → dscore`, through the softmax.
    ScoreGrad,
    /// `(q, k, v, dscore) → dq`.
    GradQ,
    /// `(q, k, v, dscore) → dk`.
    GradK,
    /// `(q, k, v, dscore) → Σ_j dscore·tanh(q + k): [batch, seq_q, A]`, summed to dv.
    GradV,
}

/// An operation of the graph. Composite operations (conv2d, batch norm, the losses beyond
/// cross-entropy) are built from these.
///
/// Three kinds share this one enum: primitives users build (`Unary`, `Matmul`, `Reduce`…),
/// fused ops users build because one kernel beats a chain (`CrossEntropy`, `BiasAct`), and
/// ops that only gradient rules build (`CrossEntropyGrad`, `PoolGrad`, `Col2Im`, `Pad`,
/// `MatmulSumBatch`, `Expand` with a mean axis). They stay in one enum on purpose: the
/// planner, the kernel choice and the executor treat every variant alike (one value, one
/// kernel), and separate enums would double each of their matches. Which builder makes a
/// variant, and its gradient rule, are in its family's file under `ops/`.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Data fed at each call; the first axis is usually the batch axis.
    Input {
        /// Name used in error messages.
        name: String,
    },
    /// A learnable tensor that persists on the device.
    Param {
        /// Stable name, e.g. `dense1.weight`.
        name: String,
        /// Initialiser.
        init: Init,
        /// Seed for random initialisers.
        seed: u64,
        /// Learners update it (false for state such as batch-norm running averages).
        trainable: bool,
    },
    /// A tensor with one value everywhere.
    Const {
        /// The value.
        value: f32,
    },
    /// Elementwise `op(x)`.
    Unary {
        /// The function.
        op: UnaryOp,
        /// Operand.
        x: NodeId,
    },
    /// Elementwise `op(a, b)` with broadcasting.
    Binary {
        /// The function.
        op: BinaryOp,
        /// First operand.
        a: NodeId,
        /// Second operand.
        b: NodeId,
    },
    /// `op(a) · op(b)`, optionally batched; `ta`/`tb` transpose the last two axes.
    Matmul {
        /// Left operand.
        a: NodeId,
        /// Right operand.
        b: NodeId,
        /// Transpose a.
        ta: bool,
        /// Transpose b.
        tb: bool,
    },
    /// `Σ_z op(p[z]) · op(q[z])` over the batch of two rank-3 operands (the gradient of a
    /// matrix shared across a batch), in one dispatch that accumulates over the batch.
    MatmulSumBatch {
        /// `[batch, ·, ·]`.
        p: NodeId,
        /// `[batch, ·, ·]`.
        q: NodeId,
        /// Transpose each `p[z]`.
        tp: bool,
        /// Transpose each `q[z]`.
        tq: bool,
    },
    /// Reduction over `axis`, which is kept with size 1.
    Reduce {
        /// Sum, mean or max.
        op: ReduceOp,
        /// Operand.
        x: NodeId,
        /// The axis.
        axis: usize,
    },
    /// Broadcast `x` to the node's shape; with `mean_axis`, also divide by that axis' size.
    Expand {
        /// Operand.
        x: NodeId,
        /// Divide by the output size of this axis (the gradient of a mean).
        mean_axis: Option<usize>,
    },
    /// Same data, the node's shape.
    Reshape {
        /// Operand.
        x: NodeId,
    },
    /// Softmax (or log-softmax) along `axis`.
    Softmax {
        /// Operand.
        x: NodeId,
        /// The axis.
        axis: usize,
        /// Log-softmax instead.
        log: bool,
    },
    /// Per-row cross-entropy of softmax(z) against targets t, over the last axis.
    CrossEntropy {
        /// Scores (logits).
        z: NodeId,
        /// Targets, e.g. one-hot labels.
        t: NodeId,
    },
    /// Gradient of [`Op::CrossEntropy`] with respect to z, given the incoming gradient g.
    CrossEntropyGrad {
        /// Scores.
        z: NodeId,
        /// Targets.
        t: NodeId,
        /// Incoming per-row gradient, or with `scalar_g` one value for every row.
        g: NodeId,
        /// `g` holds one value (the gradient of a sum or mean of the rows' losses).
        scalar_g: bool,
        /// Divide `g` by the number of rows (the gradient of their mean).
        mean: bool,
    },
    /// Per-row 0/1 error: argmax z differs from argmax t.
    ClassError {
        /// Scores.
        z: NodeId,
        /// Targets.
        t: NodeId,
    },
    /// Sliding-window patches of an NCHW image: `[N, OH·OW, C·KH·KW]` (convolution as GEMM).
    Im2Col {
        /// Image `[N, C, H, W]`.
        x: NodeId,
        /// Window geometry.
        win: Window,
    },
    /// The adjoint of [`Op::Im2Col`]: patches summed back into an image.
    Col2Im {
        /// Patches `[N, OH·OW, C·KH·KW]`.
        x: NodeId,
        /// Window geometry.
        win: Window,
    },
    /// Max or average pooling of an NCHW image.
    Pool {
        /// Image `[N, C, H, W]`.
        x: NodeId,
        /// Window geometry.
        win: Window,
        /// Max pooling (else average over the window's in-image elements).
        max: bool,
    },
    /// Gradient of [`Op::Pool`] with respect to its input.
    PoolGrad {
        /// The pooled image.
        x: NodeId,
        /// Incoming gradient `[N, C, OH, OW]`.
        g: NodeId,
        /// Window geometry.
        win: Window,
        /// Max pooling.
        max: bool,
    },
    /// `a` and `b` joined along `axis` (CNTK's splice).
    Concat {
        /// First part.
        a: NodeId,
        /// Second part.
        b: NodeId,
        /// The axis.
        axis: usize,
    },
    /// Elements `begin..begin + len(axis)` of `x` along `axis`.
    Slice {
        /// Operand.
        x: NodeId,
        /// The axis.
        axis: usize,
        /// First index taken.
        begin: usize,
    },
    /// The adjoint of [`Op::Slice`]: `x` placed at `begin` along `axis`, zeros elsewhere.
    Pad {
        /// Operand.
        x: NodeId,
        /// The axis.
        axis: usize,
        /// Where `x` starts.
        begin: usize,
    },
    /// Axes reordered: output axis k is input axis `perm[k]`.
    Permute {
        /// Operand.
        x: NodeId,
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Rows of `table: [V, D]` picked by indices stored as floats: `[..] → [.., D]` (an
    /// embedding lookup). Fed indices outside `0..V` are a feed error; a computed one gives
    /// a zero row.
    GatherRows {
        /// The table.
        table: NodeId,
        /// Row indices.
        indices: NodeId,
    },
    /// The adjoint of [`Op::GatherRows`]: `[V, D]` (V the node's first axis), row r the
    /// sum of the rows of `g` whose index is r (an embedding's gradient).
    ScatterRows {
        /// Row indices.
        indices: NodeId,
        /// Incoming gradient `[.., D]`.
        g: NodeId,
    },
    /// One step of each sequence: `[batch, seq, ..] → [batch, ..]`, the last valid one (or
    /// the first).
    SeqPick {
        /// A sequence tensor.
        x: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// The last step (else the first).
        last: bool,
    },
    /// The adjoint of [`Op::SeqPick`]: `g: [batch, ..]` placed at that step, zeros elsewhere
    /// (`[batch, seq, ..]`).
    SeqPlace {
        /// Per-sequence values.
        g: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// At the last step (else the first).
        last: bool,
    },
    /// Σ (or max) over each sequence's valid steps: `[batch, seq, ..] → [batch, ..]`.
    SeqReduce {
        /// A sequence tensor.
        x: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// Max instead of Σ.
        max: bool,
    },
    /// A per-sequence value at every valid step, zeros at padding: `[batch, ..] →
    /// [batch, seq, ..]` (CNTK's `sequence.broadcast_as`).
    SeqBroadcast {
        /// Per-sequence values.
        v: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
    },
    /// The value one step earlier (`past_value`) or later (`future_value`), `init` where
    /// there is none; zeros at padding.
    SeqShift {
        /// A sequence tensor.
        x: NodeId,
        /// The initial state, `[batch, ..]`.
        init: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// One step later (else earlier).
        future: bool,
    },
    /// 1 at the valid steps in `begin..end` of each sequence, 0 elsewhere: `[batch, seq]`.
    /// Negative bounds count from the sequence's end, `end == 0` is its end (CNTK's
    /// `sequence.slice`); `0..0` is the whole sequence.
    SeqMask {
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// First step.
        begin: i32,
        /// One past the last step.
        end: i32,
    },
    /// The steps where `cond: [batch, seq]` is non-zero: their indices, in order, on a
    /// derived axis (`[batch, seq']`, zeros past each count), or with `count` how many
    /// there are (`[batch]`, the derived axis's lengths).
    SeqWhere {
        /// The condition per step.
        cond: NodeId,
        /// The lengths of `cond`'s axis.
        lengths: NodeId,
        /// The counts instead of the indices.
        count: bool,
    },
    /// The steps of `x: [batch, seq, ..]` at the indices `idx: [batch, seq']`, on `idx`'s
    /// axis: `[batch, seq', ..]`, zeros at its padding.
    SeqGather {
        /// A sequence tensor.
        x: NodeId,
        /// Step indices into `x`'s sequences.
        idx: NodeId,
        /// The lengths of `idx`'s axis.
        lengths: NodeId,
    },
    /// The adjoint of [`Op::SeqGather`]: each step of `g: [batch, seq', ..]` added to the
    /// step of `x`'s axis it was gathered from (`[batch, seq, ..]`).
    SeqScatter {
        /// Gradients of the gathered steps.
        g: NodeId,
        /// Step indices, as the gather took them.
        idx: NodeId,
        /// The lengths of `idx`'s axis.
        lengths: NodeId,
    },
    /// A part of additive attention of queries on one sequence axis over keys on another
    /// (or the same): `args` are the part's operands in its order (the first repeated past
    /// `n_args`), then the lengths of the queries' and the keys' axes.
    Attention {
        /// Which part.
        part: AttnPart,
        /// The operands.
        args: [NodeId; 4],
        /// How many of `args` are operands.
        n_args: u8,
        /// The queries' axis's lengths.
        q_lengths: NodeId,
        /// The keys' axis's lengths.
        k_lengths: NodeId,
    },
    /// An LSTM over sequences, one scan: from the input projections `xproj: [batch, seq, 4H]`
    /// (gate blocks g, i, f, o), the recurrent weights `u: [H, 4H]` and the initial states
    /// `h0`, `c0: [batch, H]`, the states `[h | c]` of every step: `[batch, seq, 2H]`.
    LstmScan {
        /// Input projections of every step, bias included.
        xproj: NodeId,
        /// Recurrent weights.
        u: NodeId,
        /// Initial hidden state.
        h0: NodeId,
        /// Initial cell state.
        c0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// Scan from each sequence's last step down.
        backwards: bool,
        /// Added to the forget gate's pre-activation.
        forget_bias: f32,
    },
    /// Backpropagation through an [`Op::LstmScan`]: per step the gradient of the gate
    /// pre-activations (4H) and the gradients reaching the previous h and c (2H):
    /// `[batch, seq, 6H]`.
    LstmScanGrad {
        /// As in the scan.
        xproj: NodeId,
        /// As in the scan.
        u: NodeId,
        /// As in the scan.
        h0: NodeId,
        /// As in the scan.
        c0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// The scan's output.
        state: NodeId,
        /// The gradient of the scan's output.
        g: NodeId,
        /// As in the scan.
        backwards: bool,
        /// As in the scan.
        forget_bias: f32,
    },
    /// A GRU over sequences, one scan (CNTK's convention, see gru.wgsl): from the input
    /// projections `xproj: [batch, seq, 3H]` (blocks z, r, c), `u: [H, 3H]` and `h0:
    /// [batch, H]`, the hidden state of every step: `[batch, seq, H]`.
    GruScan {
        /// Input projections of every step, bias included.
        xproj: NodeId,
        /// Recurrent weights `[Uz | Ur | Uc]`.
        u: NodeId,
        /// Initial state.
        h0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// Scan from each sequence's last step down.
        backwards: bool,
    },
    /// Backpropagation through an [`Op::GruScan`]: per step the gradient of the projections
    /// (3H), the gradient reaching the previous state (H) and r ⊙ h (H): `[batch, seq, 5H]`.
    GruScanGrad {
        /// As in the scan.
        xproj: NodeId,
        /// As in the scan.
        u: NodeId,
        /// As in the scan.
        h0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// The scan's output.
        state: NodeId,
        /// The gradient of the scan's output.
        g: NodeId,
        /// As in the scan.
        backwards: bool,
    },
    /// A plain RNN over sequences, one scan: `h' = tanh(xproj + h·u)` from `xproj: [batch,
    /// seq, H]`, `u: [H, H]` and `h0: [batch, H]`: the hidden state of every step.
    RnnScan {
        /// Input projections of every step, bias included.
        xproj: NodeId,
        /// Recurrent weights.
        u: NodeId,
        /// Initial state.
        h0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// Scan from each sequence's last step down.
        backwards: bool,
    },
    /// Backpropagation through an [`Op::RnnScan`]: per step the pre-activation's gradient
    /// (H) and the gradient reaching the previous state (H): `[batch, seq, 2H]`.
    RnnScanGrad {
        /// As in the scan.
        xproj: NodeId,
        /// As in the scan.
        u: NodeId,
        /// As in the scan.
        h0: NodeId,
        /// The graph's sequence lengths.
        lengths: NodeId,
        /// The scan's output.
        state: NodeId,
        /// The gradient of the scan's output.
        g: NodeId,
        /// As in the scan.
        backwards: bool,
    },
    /// One-hot rows from class indices stored as floats: `[..] → [.., classes]`.
    OneHot {
        /// Class indices.
        x: NodeId,
    },
    /// Zeroes each element with probability `p` and scales the rest by 1/(1-p); the mask
    /// comes from a counter-based generator keyed by (seed, step, element).
    Dropout {
        /// Operand.
        x: NodeId,
        /// Drop probability.
        p: f32,
        /// Per-node seed.
        seed: u64,
    },
    /// `act(x + b)` with the bias `b: [C]` broadcast along `axis` of `x`, in one kernel
    /// (the bias-and-activation epilogue of dense and convolution layers).
    BiasAct {
        /// Operand.
        x: NodeId,
        /// Bias, one value per index of `axis`.
        b: NodeId,
        /// The channel axis.
        axis: usize,
        /// Activation: `None`, or `Relu`, `Sigmoid` or `Tanh`.
        act: Option<UnaryOp>,
    },
    /// Σ of `x` over every axis but `axis`: `[C]` (a bias' gradient).
    ChannelSum {
        /// Operand.
        x: NodeId,
        /// The kept axis.
        axis: usize,
    },
    /// A value that an enclosing [`Op::Scan`] binds at each iteration: a step of one of
    /// its sequences, or one of its carried values (a recurrence's state). It has no
    /// inputs; the scan writes it before its body runs.
    StepValue,
    /// A scan over a sequence axis (`Graph::recurrence`, and backpropagation through one):
    /// a body of graph nodes run once per step, with carried values and per-step outputs;
    /// the recorded values of every step, side by side: `[batch, seq, width]`.
    Scan(std::sync::Arc<super::ScanSpec>),
    /// The value carry `carry` of the scan `scan` holds after its last step (the gradient
    /// sums of backpropagation through time); it shares the carry's buffer.
    ScanFinal {
        /// The scan.
        scan: NodeId,
        /// Which of its carries.
        carry: usize,
    },
    /// `train` in training steps, `eval` otherwise (dropout, batch-norm statistics).
    Mode {
        /// Value used while training.
        train: NodeId,
        /// Value used in evaluation.
        eval: NodeId,
    },
}

/// Geometry of a 2-D sliding window over an NCHW image (convolution or pooling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding above (below is implied by the output size).
    pub ph: usize,
    /// Zero padding on the left.
    pub pw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Window {
    /// Whether the windows tile the image: stride equal to the kernel, no padding or
    /// dilation, so every pixel lies in at most one window.
    pub fn tiles(&self) -> bool {
        (self.sh, self.sw, self.ph, self.pw, self.dh, self.dw) == (self.kh, self.kw, 0, 0, 1, 1)
    }
}

impl Op {
    /// The nodes this op reads, in binding order.
    pub fn inputs(&self) -> Vec<NodeId> {
        match *self {
            Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::StepValue => vec![],
            Op::Scan(ref spec) => spec.reads(),
            Op::ScanFinal { scan, .. } => vec![scan],
            Op::Unary { x, .. }
            | Op::Reduce { x, .. }
            | Op::Expand { x, .. }
            | Op::Reshape { x }
            | Op::Softmax { x, .. }
            | Op::Im2Col { x, .. }
            | Op::Col2Im { x, .. }
            | Op::Pool { x, .. }
            | Op::Slice { x, .. }
            | Op::Pad { x, .. }
            | Op::OneHot { x }
            | Op::Permute { x, .. }
            | Op::ChannelSum { x, .. }
            | Op::Dropout { x, .. } => vec![x],
            Op::Binary { a, b, .. } | Op::Matmul { a, b, .. } | Op::Concat { a, b, .. } => {
                vec![a, b]
            }
            Op::BiasAct { x, b, .. } => vec![x, b],
            Op::PoolGrad { x, g, .. } => vec![x, g],
            Op::GatherRows { table, indices } => vec![table, indices],
            Op::SeqPick { x, lengths, .. }
            | Op::SeqReduce { x, lengths, .. }
            | Op::SeqBroadcast { v: x, lengths }
            | Op::SeqPlace { g: x, lengths, .. } => vec![x, lengths],
            // Bound in this order: the lengths always at the same binding.
            Op::SeqShift {
                x, init, lengths, ..
            } => vec![x, lengths, init],
            Op::SeqMask { lengths, .. } => vec![lengths],
            Op::Attention {
                args,
                n_args,
                q_lengths,
                k_lengths,
                ..
            } => {
                let mut v = args[..n_args as usize].to_vec();
                v.extend([q_lengths, k_lengths]);
                v
            }
            Op::SeqWhere { cond, lengths, .. } => vec![cond, lengths],
            // The sequence, the lengths (of the indices' axis), the indices.
            Op::SeqGather { x, idx, lengths } | Op::SeqScatter { g: x, idx, lengths } => {
                vec![x, lengths, idx]
            }
            Op::LstmScan {
                xproj,
                u,
                h0,
                c0,
                lengths,
                ..
            } => vec![xproj, u, h0, c0, lengths],
            Op::LstmScanGrad {
                xproj,
                u,
                h0,
                c0,
                lengths,
                state,
                g,
                ..
            } => vec![xproj, u, h0, c0, lengths, state, g],
            Op::GruScan {
                xproj,
                u,
                h0,
                lengths,
                ..
            }
            | Op::RnnScan {
                xproj,
                u,
                h0,
                lengths,
                ..
            } => vec![xproj, u, h0, lengths],
            Op::GruScanGrad {
                xproj,
                u,
                h0,
                lengths,
                state,
                g,
                ..
            }
            | Op::RnnScanGrad {
                xproj,
                u,
                h0,
                lengths,
                state,
                g,
                ..
            } => vec![xproj, u, h0, lengths, state, g],
            Op::ScatterRows { indices, g } => vec![indices, g],
            Op::MatmulSumBatch { p, q, .. } => vec![p, q],
            Op::Mode { train, eval } => vec![train, eval],
            Op::CrossEntropy { z, t } | Op::ClassError { z, t } => vec![z, t],
            Op::CrossEntropyGrad { z, t, g, .. } => vec![z, t, g],
        }
    }
}
