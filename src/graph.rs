//! The graph: a plain vector of nodes, each an [`Op`] over earlier nodes with an inferred
//! [`Shape`]. Ops are added through [`Graph`]'s methods, which check shapes and return an
//! error naming the op and both shapes on a mismatch.
//!
//! The graph uses interior mutability so that calls nest: `g.add(g.matmul(x, w)?, b)?`.

use std::cell::{Ref, RefCell};

use crate::error::shape_err;
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// A node of a [`Graph`]; cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

impl NodeId {
    /// The node's index in its graph.
    pub fn index(self) -> usize {
        self.0
    }
}

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// Every element the same value.
    Const(f32),
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
    },
    /// Normal with mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Glorot/Xavier uniform, CNTK's default: U(±sqrt(6 / (fan_in + fan_out))), where
    /// fan_out is the last axis and fan_in the product of the others.
    GlorotUniform,
    /// He normal: N(0, sqrt(2 / fan_in)).
    HeNormal,
}

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

impl UnaryOp {
    /// The kernel's op code and output scale.
    pub(crate) fn code(self) -> (usize, f32) {
        match self {
            UnaryOp::Neg => (0, 1.0),
            UnaryOp::Exp => (1, 1.0),
            UnaryOp::Log => (2, 1.0),
            UnaryOp::Sqrt => (3, 1.0),
            UnaryOp::Abs => (4, 1.0),
            UnaryOp::Sign => (5, 1.0),
            UnaryOp::Sigmoid => (6, 1.0),
            UnaryOp::Tanh => (7, 1.0),
            UnaryOp::Relu => (8, 1.0),
            UnaryOp::Softplus => (9, 1.0),
            UnaryOp::Scale(s) => (99, s),
        }
    }
}

/// Elementwise binary functions (with broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
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
    /// The kernel's op code.
    pub(crate) fn code(self) -> usize {
        self as usize
    }
}

/// Op code of the binary kernel that copies its first operand (used by broadcasting).
pub(crate) const BINARY_FIRST: usize = 99;

/// Reductions over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// Σ / n
    Mean,
    /// max
    Max,
}

/// A primitive operation. Composite operations are built from these.
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
        /// Transpose each p[z].
        tp: bool,
        /// Transpose each q[z].
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
            Op::Input { .. } | Op::Param { .. } | Op::Const { .. } => vec![],
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
            Op::MatmulSumBatch { p, q, .. } => vec![p, q],
            Op::Mode { train, eval } => vec![train, eval],
            Op::CrossEntropy { z, t } | Op::ClassError { z, t } => vec![z, t],
            Op::CrossEntropyGrad { z, t, g, .. } => vec![z, t, g],
        }
    }
}

/// A node: its op and its inferred shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// What computes it.
    pub op: Op,
    /// Its shape (possibly with a batch axis).
    pub shape: Shape,
}

/// A computation graph. Nodes are only ever appended, so ids are in topological order.
#[derive(Default)]
pub struct Graph {
    nodes: RefCell<Vec<Node>>,
    assigns: RefCell<Vec<(NodeId, NodeId)>>,
    seed: u64,
}

impl Graph {
    /// An empty graph; parameter initialisers are seeded from 0.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An empty graph whose parameter initialisers derive from `seed`.
    pub fn with_seed(seed: u64) -> Graph {
        Graph {
            nodes: RefCell::default(),
            assigns: RefCell::default(),
            seed,
        }
    }

    /// A snapshot of the nodes.
    pub fn nodes(&self) -> Ref<'_, Vec<Node>> {
        self.nodes.borrow()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of a node.
    pub fn shape(&self, id: NodeId) -> Shape {
        self.nodes.borrow()[id.0].shape.clone()
    }

    /// All trainable parameters, in creation order.
    pub fn parameters(&self) -> Vec<NodeId> {
        self.ids_where(|op| {
            matches!(
                op,
                Op::Param {
                    trainable: true,
                    ..
                }
            )
        })
    }

    /// Every parameter and state variable (what a checkpoint holds), in creation order.
    pub fn variables(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Param { .. }))
    }

    /// Registers `state ← value` to run at the end of each training step (e.g. batch-norm
    /// running averages). `state` must be a non-trainable variable of the same shape.
    pub fn assign(&self, state: NodeId, value: NodeId) -> Result<()> {
        let (ss, vs) = (self.check("assign", state)?, self.check("assign", value)?);
        if !matches!(
            self.nodes.borrow()[state.0].op,
            Op::Param {
                trainable: false,
                ..
            }
        ) {
            return Err(Error::Invalid(format!(
                "assign: node {} is not a state variable",
                state.0
            )));
        }
        if ss != vs {
            return shape_err("assign", format!("state {ss} and value {vs} differ"));
        }
        self.assigns.borrow_mut().push((state, value));
        Ok(())
    }

    /// The registered `(state, value)` assignments.
    pub fn assignments(&self) -> Vec<(NodeId, NodeId)> {
        self.assigns.borrow().clone()
    }

    /// All inputs, in creation order.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Input { .. }))
    }

    /// The name of an input or parameter node.
    pub fn name(&self, id: NodeId) -> Option<String> {
        match &self.nodes.borrow()[id.0].op {
            Op::Input { name } | Op::Param { name, .. } => Some(name.clone()),
            _ => None,
        }
    }

    /// The parameter or input called `name`.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .borrow()
            .iter()
            .position(
                |n| matches!(&n.op, Op::Input { name: m } | Op::Param { name: m, .. } if m == name),
            )
            .map(NodeId)
    }

    fn ids_where(&self, f: impl Fn(&Op) -> bool) -> Vec<NodeId> {
        let nodes = self.nodes.borrow();
        (0..nodes.len())
            .filter(|&i| f(&nodes[i].op))
            .map(NodeId)
            .collect()
    }

    pub(crate) fn check(&self, op: &'static str, id: NodeId) -> Result<Shape> {
        let nodes = self.nodes.borrow();
        nodes
            .get(id.0)
            .map(|n| n.shape.clone())
            .ok_or_else(|| Error::Invalid(format!("{op}: node {} is not in this graph", id.0)))
    }

    /// A seed for a random op, derived from the graph's seed and the node count.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.len() as u64)
    }

    pub(crate) fn push(&self, op: Op, shape: Shape) -> NodeId {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node { op, shape });
        NodeId(nodes.len() - 1)
    }

    // ---- leaves ----------------------------------------------------------------------

    /// An input with a leading batch axis: `input("x", &[2])` has shape `[batch, 2]`.
    pub fn input(&self, name: &str, dims: &[usize]) -> Result<NodeId> {
        self.input_with_shape(name, Shape::batched(dims))
    }

    /// An input of any shape (at most one batch axis).
    pub fn input_with_shape(&self, name: &str, shape: Shape) -> Result<NodeId> {
        if shape.0.iter().filter(|d| **d == Dim::Batch).count() > 1 {
            return shape_err(
                "input",
                format!("{name}: at most one batch axis, got {shape}"),
            );
        }
        if shape.0.contains(&Dim::Fixed(0)) {
            return shape_err("input", format!("{name}: empty axis in {shape}"));
        }
        if self.find(name).is_some() {
            return Err(Error::Invalid(format!(
                "input: the name {name} is already used"
            )));
        }
        Ok(self.push(Op::Input { name: name.into() }, shape))
    }

    /// A learnable parameter of fixed shape.
    pub fn parameter(&self, name: &str, dims: &[usize], init: Init) -> Result<NodeId> {
        self.variable(name, dims, init, true)
    }

    /// A variable kept on the device across steps: a parameter when `trainable`, else state
    /// that only [`Graph::assign`] changes.
    pub fn variable(
        &self,
        name: &str,
        dims: &[usize],
        init: Init,
        trainable: bool,
    ) -> Result<NodeId> {
        if dims.contains(&0) {
            return shape_err("parameter", format!("{name}: empty axis in {dims:?}"));
        }
        if self.find(name).is_some() {
            return Err(Error::Invalid(format!(
                "parameter: the name {name} is already used"
            )));
        }
        let seed = self.next_seed();
        Ok(self.push(
            Op::Param {
                name: name.into(),
                init,
                seed,
                trainable,
            },
            Shape::fixed(dims),
        ))
    }

    /// A constant tensor of fixed shape, every element `value`.
    pub fn constant(&self, value: f32, dims: &[usize]) -> NodeId {
        self.push(Op::Const { value }, Shape::fixed(dims))
    }

    /// A scalar constant (shape `[]`), broadcast against anything.
    pub fn scalar(&self, value: f32) -> NodeId {
        self.constant(value, &[])
    }

    // ---- elementwise -----------------------------------------------------------------

    /// Elementwise unary function.
    pub fn unary(&self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        let s = self.check("unary", x)?;
        Ok(self.push(Op::Unary { op, x }, s))
    }

    /// -x
    pub fn neg(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Neg, x)
    }
    /// e^x
    pub fn exp(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Exp, x)
    }
    /// ln(1 + e^x), stable for any x
    pub fn softplus(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Softplus, x)
    }
    /// ln x
    pub fn log(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Log, x)
    }
    /// √x
    pub fn sqrt(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sqrt, x)
    }
    /// |x|
    pub fn abs(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Abs, x)
    }
    /// sign(x)
    pub fn sign(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sign, x)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sigmoid, x)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Tanh, x)
    }
    /// max(x, 0)
    pub fn relu(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Relu, x)
    }
    /// s · x
    pub fn scale(&self, x: NodeId, s: f32) -> Result<NodeId> {
        self.unary(UnaryOp::Scale(s), x)
    }

    /// Elementwise binary function with numpy broadcasting.
    pub fn binary(&self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        let name = binary_name(op);
        let sa = self.check(name, a)?;
        let sb = self.check(name, b)?;
        let s = Shape::broadcast(name, &sa, &sb)?;
        Ok(self.push(Op::Binary { op, a, b }, s))
    }

    /// a + b
    pub fn add(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Add, a, b)
    }
    /// a - b
    pub fn sub(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }
    /// a · b (elementwise)
    pub fn mul(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Mul, a, b)
    }
    /// a / b
    pub fn div(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Div, a, b)
    }
    /// max(a, b)
    pub fn maximum(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Max, a, b)
    }
    /// min(a, b)
    pub fn minimum(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Min, a, b)
    }

    // ---- matmul --------------------------------------------------------------------

    /// Matrix product `a · b` (see [`Graph::matmul_t`]).
    pub fn matmul(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.matmul_t(a, b, false, false)
    }

    /// Matrix product `op(a) · op(b)` where `op` transposes the last two axes when asked.
    /// Operands have rank 2 or 3; a rank-3 operand is a batch of matrices, and a rank-2
    /// operand is shared by every matrix of the other's batch.
    pub fn matmul_t(&self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> Result<NodeId> {
        let sa = self.check("matmul", a)?;
        let sb = self.check("matmul", b)?;
        let s = matmul_shape(&sa, &sb, ta, tb)?;
        Ok(self.push(Op::Matmul { a, b, ta, tb }, s))
    }

    /// `Σ_z p[z]ᵀ · q[z]` for `p: [batch, r, m]`, `q: [batch, r, n]`: `[m, n]`.
    pub fn matmul_sum_batch(&self, p: NodeId, q: NodeId) -> Result<NodeId> {
        self.matmul_sum_batch_t(p, q, true, false)
    }

    /// `Σ_z op(p[z]) · op(q[z])` over the batch axis of two rank-3 operands, where `op`
    /// transposes when `tp`/`tq` is set: `[m, n]`, in one dispatch.
    pub fn matmul_sum_batch_t(&self, p: NodeId, q: NodeId, tp: bool, tq: bool) -> Result<NodeId> {
        let (sp, sq) = (self.check("matmul", p)?, self.check("matmul", q)?);
        if sp.rank() != 3 || sq.rank() != 3 || sp.0[0] != sq.0[0] {
            return shape_err(
                "matmul",
                format!("Σ_z p[z]·q[z] needs [b, ·, ·] and [b, ·, ·], got {sp} and {sq}"),
            );
        }
        let item = |s: &Shape| Shape(s.0[1..].to_vec());
        let out = matmul_shape(&item(&sp), &item(&sq), tp, tq)?;
        Ok(self.push(Op::MatmulSumBatch { p, q, tp, tq }, out))
    }

    // ---- reductions and shape ---------------------------------------------------------

    /// Reduction over one axis, kept with size 1.
    pub fn reduce_axis(&self, op: ReduceOp, x: NodeId, axis: usize) -> Result<NodeId> {
        let mut s = self.check("reduce", x)?;
        if axis >= s.rank() {
            return shape_err("reduce", format!("axis {axis} out of range for shape {s}"));
        }
        s.0[axis] = Dim::Fixed(1);
        Ok(self.push(Op::Reduce { op, x, axis }, s))
    }

    /// Reduction over `axes` (negative counts from the end; empty means all axes).
    /// With `keepdims` the reduced axes stay with size 1, otherwise they are removed.
    pub fn reduce(
        &self,
        op: ReduceOp,
        x: NodeId,
        axes: &[isize],
        keepdims: bool,
    ) -> Result<NodeId> {
        let s = self.check("reduce", x)?;
        let mut list: Vec<usize> = if axes.is_empty() {
            (0..s.rank()).collect()
        } else {
            axes.iter()
                .map(|&a| s.axis("reduce", a))
                .collect::<Result<_>>()?
        };
        list.sort_unstable();
        list.dedup();
        let mut cur = x;
        for &a in &list {
            if s.0[a] != Dim::Fixed(1) {
                cur = self.reduce_axis(op, cur, a)?;
            }
        }
        if keepdims {
            return Ok(cur);
        }
        let kept: Vec<Dim> = (0..s.rank())
            .filter(|a| !list.contains(a))
            .map(|a| s.0[a])
            .collect();
        self.reshape(cur, Shape(kept))
    }

    /// Σ over `axes` (empty: all), axes removed.
    pub fn reduce_sum(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Sum, x, axes, false)
    }
    /// Mean over `axes` (empty: all), axes removed.
    pub fn reduce_mean(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Mean, x, axes, false)
    }
    /// Max over `axes` (empty: all), axes removed.
    pub fn reduce_max(&self, x: NodeId, axes: &[isize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Max, x, axes, false)
    }

    /// Broadcasts `x` to `shape`.
    pub fn expand(&self, x: NodeId, shape: Shape) -> Result<NodeId> {
        self.expand_mean(x, shape, None)
    }

    pub(crate) fn expand_mean(
        &self,
        x: NodeId,
        shape: Shape,
        mean_axis: Option<usize>,
    ) -> Result<NodeId> {
        let s = self.check("expand", x)?;
        let b = Shape::broadcast("expand", &s, &shape)?;
        if b != shape {
            return shape_err("expand", format!("cannot broadcast {s} to {shape}"));
        }
        Ok(self.push(Op::Expand { x, mean_axis }, shape))
    }

    /// Same data viewed with another shape of equal size (the batch axis must stay).
    pub fn reshape(&self, x: NodeId, shape: Shape) -> Result<NodeId> {
        let s = self.check("reshape", x)?;
        let batches = |sh: &Shape| sh.0.iter().filter(|d| **d == Dim::Batch).count();
        if batches(&s) != batches(&shape) || s.per_sample() != shape.per_sample() {
            return shape_err("reshape", format!("cannot reshape {s} to {shape}"));
        }
        if s == shape {
            return Ok(x);
        }
        Ok(self.push(Op::Reshape { x }, shape))
    }

    /// Reorders axes: output axis k is input axis `perm[k]` (numpy's `transpose`).
    pub fn permute(&self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        let s = self.check("permute", x)?;
        let mut seen = vec![false; s.rank()];
        if perm.len() != s.rank()
            || perm
                .iter()
                .any(|&a| a >= s.rank() || std::mem::replace(&mut seen[a], true))
        {
            return shape_err(
                "permute",
                format!("{perm:?} is not a permutation of the axes of {s}"),
            );
        }
        if perm.iter().enumerate().all(|(k, &a)| k == a) {
            return Ok(x);
        }
        let out = Shape(perm.iter().map(|&a| s.0[a]).collect());
        Ok(self.push(
            Op::Permute {
                x,
                perm: perm.to_vec(),
            },
            out,
        ))
    }

    /// Softmax along `axis` (negative counts from the end).
    pub fn softmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        self.softmax_op(x, axis, false)
    }

    /// Log-softmax along `axis`, computed stably.
    pub fn log_softmax(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        self.softmax_op(x, axis, true)
    }

    fn softmax_op(&self, x: NodeId, axis: isize, log: bool) -> Result<NodeId> {
        let s = self.check("softmax", x)?;
        let axis = s.axis("softmax", axis)?;
        Ok(self.push(Op::Softmax { x, axis, log }, s))
    }

    // ---- losses and metrics ------------------------------------------------------------

    fn row_op(&self, op: &'static str, z: NodeId, t: NodeId) -> Result<Shape> {
        let sz = self.check(op, z)?;
        let st = self.check(op, t)?;
        if sz != st {
            return shape_err(
                op,
                format!("scores {sz} and targets {st} must have the same shape"),
            );
        }
        if sz.rank() == 0 {
            return shape_err(op, "scores need a class axis, got a scalar".to_string());
        }
        Ok(Shape(sz.0[..sz.rank() - 1].to_vec()))
    }

    /// CNTK's `cross_entropy_with_softmax`: per row (last axis = classes),
    /// `-Σ t · log softmax(z)`, fused and numerically stable. Shape: z's without the last axis.
    pub fn cross_entropy_with_softmax(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let s = self.row_op("cross_entropy_with_softmax", z, t)?;
        Ok(self.push(Op::CrossEntropy { z, t }, s))
    }

    /// CNTK's `classification_error`: per row, 1 when argmax z differs from argmax t.
    pub fn classification_error(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let s = self.row_op("classification_error", z, t)?;
        Ok(self.push(Op::ClassError { z, t }, s))
    }

    pub(crate) fn cross_entropy_grad(&self, z: NodeId, t: NodeId, g: NodeId) -> NodeId {
        // The gradient of a sum or mean over the rows reaches here as one value broadcast to
        // every row; the kernel reads that value directly (one dispatch less per step).
        let folded = match self.nodes.borrow()[g.0].op {
            Op::Expand { x, mean_axis } if self.shape(g).rank() == 1 => {
                let one = self.shape(x).resolve(1).iter().product::<usize>() == 1;
                one.then_some((x, mean_axis.is_some()))
            }
            _ => None,
        };
        let (g, scalar_g, mean) = match folded {
            Some((x, mean)) => (x, true, mean),
            None => (g, false, false),
        };
        let s = self.shape(z);
        let op = Op::CrossEntropyGrad {
            z,
            t,
            g,
            scalar_g,
            mean,
        };
        self.push(op, s)
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Max => "maximum",
        BinaryOp::Min => "minimum",
        _ => "compare",
    }
}

/// Output shape of `op(a) · op(b)`.
fn matmul_shape(sa: &Shape, sb: &Shape, ta: bool, tb: bool) -> Result<Shape> {
    let op = "matmul";
    for (s, name) in [(sa, "left"), (sb, "right")] {
        if !(2..=3).contains(&s.rank()) {
            return shape_err(
                op,
                format!("{name} operand must have rank 2 or 3, got {s} (with {sa} · {sb})"),
            );
        }
    }
    let last2 = |s: &Shape, t: bool| {
        let r = s.rank();
        let (x, y) = (s.0[r - 2], s.0[r - 1]);
        if t {
            (y, x)
        } else {
            (x, y)
        }
    };
    let (m, ka) = last2(sa, ta);
    let (kb, n) = last2(sb, tb);
    if ka != kb {
        return shape_err(
            op,
            format!(
                "inner dimensions differ: {sa}{} · {sb}{}",
                if ta { "ᵀ" } else { "" },
                if tb { "ᵀ" } else { "" }
            ),
        );
    }
    let batch = match (sa.rank(), sb.rank()) {
        (3, 3) if sa.0[0] != sb.0[0] => {
            return shape_err(op, format!("batch sizes differ: {sa} · {sb}"));
        }
        (3, _) => Some(sa.0[0]),
        (_, 3) => Some(sb.0[0]),
        _ => None,
    };
    let mut out: Vec<Dim> = batch.into_iter().collect();
    out.extend([m, n]);
    Ok(Shape(out))
}
