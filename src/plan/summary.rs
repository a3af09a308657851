//! A plan described as data: what each dispatch runs, what was fused into it and what it
//! binds. Tests assert on this instead of on label text; tools print it.

use crate::graph::NodeId;
use crate::kernels::Shader;

/// Why a dispatch is in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Computes the value of a node of the graph.
    Compute(NodeId),
    /// Fills a buffer with NaN before a kernel writes it (`ContextOptions::poison`).
    Poison,
    /// Copies a parameter's gradient into the learner's gradient arena.
    GradientCopy,
    /// A learner's update of `parameters` parameters stored side by side.
    Update {
        /// Parameters the dispatch updates.
        parameters: usize,
    },
    /// The numerics guard's look at the update of `parameters` parameters: it flags a
    /// non-finite loss, gradient or updated value, and then no update writes anything.
    UpdateCheck {
        /// Parameters the update covers.
        parameters: usize,
    },
    /// Checks a value for NaN and infinities (`ContextOptions::check_numerics`).
    NumericsCheck,
    /// A state assignment (`Graph::assign`), run at the end of a training step.
    Assign,
}

/// An activation function applied (or differentiated) inside another kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh x
    Tanh,
}

/// Work that the planner folded into a dispatch instead of giving it a dispatch of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fused {
    /// B is the im2col of an image, read through the window and never stored.
    Im2colGather,
    /// The input gradient of a stride-1 convolution: the filters times the output gradients
    /// read through the transposed window (no stored product, no col2im).
    TransposedWindow,
    /// Scalings of the operands, folded into the product as this factor.
    Alpha(f32),
    /// A bias added per column of the product (dense layers).
    BiasPerColumn,
    /// A bias added per row of the product (convolutions: one per filter).
    BiasPerRow,
    /// An activation applied to the result.
    Activation(Activation),
    /// The result multiplied by an activation's slope (the activation's gradient).
    ActivationGrad(Activation),
    /// The classification error of the same scores, written beside the cross-entropy.
    ClassificationError,
}

/// One dispatch of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchSummary {
    /// Why it runs.
    pub role: Role,
    /// The kernel family (the WGSL file).
    pub shader: Shader,
    /// The entry point in that file.
    pub entry: &'static str,
    /// Shape of what it writes (for updates and copies, the floats written).
    pub output: Vec<usize>,
    /// What was folded into it.
    pub fused: Vec<Fused>,
    /// Storage and uniform buffers it binds (the parameter block not counted).
    pub buffers: usize,
    /// Bytes of those bindings.
    pub bytes: u64,
    /// Operands copied into textures just before it (CPU adapters' products).
    pub operand_copies: usize,
}

impl DispatchSummary {
    /// Whether `f` was folded into this dispatch.
    pub fn has(&self, f: Fused) -> bool {
        self.fused.contains(&f)
    }

    /// Whether anything matching `pred` was folded into this dispatch.
    pub fn fused_any(&self, pred: impl Fn(&Fused) -> bool) -> bool {
        self.fused.iter().any(pred)
    }
}

/// Every dispatch of one plan, in the order they run.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanSummary {
    /// The dispatches.
    pub dispatches: Vec<DispatchSummary>,
    /// Runs of dispatches replayed once per step (a stepwise LSTM's body).
    pub loops: Vec<LoopSummary>,
    /// Bytes of intermediate buffers and operand textures (parameters and inputs excluded).
    pub scratch_bytes: u64,
}

/// Dispatches `first .. first + len` of a plan, recorded once and run `times` times (once
/// per padded step) in every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopSummary {
    /// The body's first dispatch.
    pub first: usize,
    /// Dispatches in the body.
    pub len: usize,
    /// Times the body runs.
    pub times: usize,
}

impl PlanSummary {
    /// Number of dispatches.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    /// True for a plan without dispatches.
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Number of dispatches matching `pred`.
    pub fn count(&self, pred: impl Fn(&DispatchSummary) -> bool) -> usize {
        self.dispatches.iter().filter(|d| pred(d)).count()
    }

    /// Number of dispatches running entry point `entry`.
    pub fn count_entry(&self, entry: &str) -> usize {
        self.count(|d| d.entry == entry)
    }

    /// Number of dispatches of kernel family `shader`.
    pub fn count_shader(&self, shader: Shader) -> usize {
        self.count(|d| d.shader == shader)
    }

    /// Number of dispatches into which `f` was folded.
    pub fn count_fused(&self, f: Fused) -> usize {
        self.count(|d| d.has(f))
    }
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, d) in self.dispatches.iter().enumerate() {
            write!(
                f,
                "{k:3} {:?} {:?}::{} {:?}",
                d.role, d.shader, d.entry, d.output
            )?;
            if !d.fused.is_empty() {
                write!(f, " fused {:?}", d.fused)?;
            }
            if d.operand_copies > 0 {
                write!(f, " ({} texture copies)", d.operand_copies)?;
            }
            writeln!(f, " — {} buffers, {} bytes", d.buffers, d.bytes)?;
        }
        write!(f, "scratch: {} bytes", self.scratch_bytes)
    }
}
