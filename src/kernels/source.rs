//! The WGSL sources: one file per kernel family under `shaders/`, and the one function that
//! produces a family's full text — the generated contract prelude, its parameter blocks,
//! the element type, the shared preludes it uses, generated entry points, then its file.

use std::sync::OnceLock;

use super::contract::{
    prelude, AttnParams, BinaryParams, CopyParams, CountParams, FillParams, Hyper, LossParams,
    ProductParams, ReduceParams, Runtime, ScanParams, SeqParams, SoftmaxParams, StepParams,
    UnaryParams, UpdateParams,
};
use super::matmul_gen;
use crate::dtype::DType;

/// A WGSL source file in `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// Constants, NaN poison and seeded random numbers.
    Fill,
    /// Elementwise unary functions.
    Unary,
    /// Elementwise binary functions with broadcasting.
    Binary,
    /// Batched matrix product with transposes.
    Matmul,
    /// Batched matrix product sharing A through subgroup broadcasts (CPU adapters).
    MatmulSubgroup,
    /// The same design reading both operands from textures (CPU adapters).
    MatmulTexture,
    /// Reductions over one axis.
    Reduce,
    /// Softmax and log-softmax.
    Softmax,
    /// Cross-entropy with softmax and classification error.
    Loss,
    /// Optimizer updates.
    Optim,
    /// The same updates reading their operands from textures (CPU adapters).
    OptimTexture,
    /// im2col and col2im.
    Conv,
    /// Max and average pooling.
    Pool,
    /// Concat, slice, pad, one-hot.
    Copy,
    /// Per-channel bias with a fused activation, and per-channel sums.
    Bias,
    /// Ops that mix the steps of sequences.
    Sequence,
    /// Recurrent scans (LSTM) and their backpropagation through time.
    Recurrence,
    /// The LSTM one step at a time around tuned products (CPU adapters).
    LstmStep,
    /// GRU scans and their backpropagation through time.
    Gru,
    /// Plain RNN scans and their backpropagation through time.
    Rnn,
    /// Additive attention and its gradients.
    Attention,
    /// A general scan's per-step reads and writes (`Graph::recurrence`).
    ScanStep,
}

/// A shared prelude file.
const ACTIVATION: &str = include_str!("../../shaders/activation.wgsl");
const PRODUCT: &str = include_str!("../../shaders/product.wgsl");
const WINDOW: &str = include_str!("../../shaders/window.wgsl");
const GRID: &str = include_str!("../../shaders/grid.wgsl");
const LANES: &str = include_str!("../../shaders/lanes.wgsl");
const SCAN: &str = include_str!("../../shaders/scan.wgsl");
const OPTIM_STORAGE: &str = include_str!("../../shaders/optim_storage.wgsl");
const OPTIM_TEXTURE: &str = include_str!("../../shaders/optim_texture.wgsl");

impl Shader {
    /// Every shader file.
    pub const ALL: [Shader; 22] = [
        Shader::Fill,
        Shader::Unary,
        Shader::Binary,
        Shader::Matmul,
        Shader::MatmulSubgroup,
        Shader::MatmulTexture,
        Shader::Reduce,
        Shader::Softmax,
        Shader::Loss,
        Shader::Optim,
        Shader::OptimTexture,
        Shader::Conv,
        Shader::Pool,
        Shader::Copy,
        Shader::Bias,
        Shader::Sequence,
        Shader::Recurrence,
        Shader::LstmStep,
        Shader::Gru,
        Shader::Rnn,
        Shader::Attention,
        Shader::ScanStep,
    ];

    /// The file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Fill => "fill.wgsl",
            Shader::Unary => "unary.wgsl",
            Shader::Binary => "binary.wgsl",
            Shader::Matmul => "matmul.wgsl",
            Shader::MatmulSubgroup => "matmul_subgroup.wgsl",
            Shader::MatmulTexture => "matmul_texture.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Softmax => "softmax.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim | Shader::OptimTexture => "optim.wgsl",
            Shader::Conv => "conv.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::Copy => "copy.wgsl",
            Shader::Bias => "bias.wgsl",
            Shader::Sequence => "sequence.wgsl",
            Shader::Recurrence => "recurrence.wgsl",
            Shader::LstmStep => "lstm_step.wgsl",
            Shader::Gru => "gru.wgsl",
            Shader::Rnn => "rnn.wgsl",
            Shader::Attention => "attention.wgsl",
            Shader::ScanStep => "scan_step.wgsl",
        }
    }

    /// The name of the module made from [`Shader::source`] (one per variant of a file).
    pub fn module_name(self) -> &'static str {
        match self {
            Shader::OptimTexture => "optim.wgsl (operands from textures)",
            s => s.file_name(),
        }
    }

    /// The file's own text.
    fn file(self) -> &'static str {
        match self {
            Shader::Fill => include_str!("../../shaders/fill.wgsl"),
            Shader::Unary => include_str!("../../shaders/unary.wgsl"),
            Shader::Binary => include_str!("../../shaders/binary.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::MatmulSubgroup => include_str!("../../shaders/matmul_subgroup.wgsl"),
            Shader::MatmulTexture => include_str!("../../shaders/matmul_texture.wgsl"),
            Shader::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Shader::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Optim | Shader::OptimTexture => include_str!("../../shaders/optim.wgsl"),
            Shader::Conv => include_str!("../../shaders/conv.wgsl"),
            Shader::Pool => include_str!("../../shaders/pool.wgsl"),
            Shader::Copy => include_str!("../../shaders/copy.wgsl"),
            Shader::Bias => include_str!("../../shaders/bias.wgsl"),
            Shader::Sequence => include_str!("../../shaders/sequence.wgsl"),
            Shader::Recurrence => include_str!("../../shaders/recurrence.wgsl"),
            Shader::LstmStep => include_str!("../../shaders/lstm_step.wgsl"),
            Shader::Gru => include_str!("../../shaders/gru.wgsl"),
            Shader::Rnn => include_str!("../../shaders/rnn.wgsl"),
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
            Shader::ScanStep => include_str!("../../shaders/scan_step.wgsl"),
        }
    }

    /// The parameter blocks this family's kernels read (WGSL struct declarations).
    fn blocks(self) -> String {
        match self {
            Shader::Fill => FillParams::wgsl("Params") + &Runtime::wgsl("Runtime"),
            Shader::Unary => UnaryParams::wgsl("Params"),
            Shader::Binary => BinaryParams::wgsl("Params"),
            Shader::Matmul | Shader::MatmulSubgroup | Shader::MatmulTexture => {
                ProductParams::wgsl("Params")
            }
            Shader::Reduce => ReduceParams::wgsl("Params"),
            Shader::Softmax => SoftmaxParams::wgsl("Params"),
            Shader::Loss => LossParams::wgsl("Params"),
            Shader::Optim | Shader::OptimTexture => {
                UpdateParams::wgsl("Params") + &Hyper::wgsl("Hyper")
            }
            Shader::Conv | Shader::Pool | Shader::Bias => CountParams::wgsl("Params"),
            Shader::Copy => CopyParams::wgsl("Params"),
            Shader::Sequence => SeqParams::wgsl("Params"),
            Shader::Recurrence | Shader::LstmStep | Shader::Gru | Shader::Rnn => {
                ScanParams::wgsl("Params")
            }
            Shader::Attention => AttnParams::wgsl("Params"),
            Shader::ScanStep => StepParams::wgsl("Params"),
        }
    }

    /// The shared preludes this family uses, in order.
    fn preludes(self) -> &'static [&'static str] {
        match self {
            Shader::Matmul | Shader::MatmulSubgroup | Shader::MatmulTexture => {
                &[ACTIVATION, PRODUCT, WINDOW]
            }
            Shader::Reduce | Shader::Softmax => &[LANES],
            Shader::Conv | Shader::Pool => &[ACTIVATION, WINDOW, GRID],
            Shader::Bias => &[ACTIVATION, LANES],
            Shader::Recurrence | Shader::LstmStep | Shader::Gru | Shader::Rnn => &[SCAN],
            Shader::Optim => &[OPTIM_STORAGE],
            Shader::OptimTexture => &[OPTIM_TEXTURE],
            _ => &[],
        }
    }

    /// The full WGSL text with elements of type `dtype`.
    pub fn source_for(self, dtype: DType) -> String {
        wgsl(self, dtype)
    }

    /// The full WGSL text for f32 elements, built once.
    pub fn source(self) -> &'static str {
        static SOURCES: OnceLock<Vec<String>> = OnceLock::new();
        let all =
            SOURCES.get_or_init(|| Shader::ALL.iter().map(|&s| wgsl(s, DType::F32)).collect());
        let k = Shader::ALL.iter().position(|&s| s == self).expect("listed");
        &all[k]
    }
}

/// The one place WGSL text is made: the contract prelude (codes and this family's parameter
/// blocks), the element type `elem` (what storage buffers hold), the shared preludes,
/// generated entry points, then the family's file, which always comes last.
pub(crate) fn wgsl(shader: Shader, dtype: DType) -> String {
    let mut s = prelude();
    s += &shader.blocks();
    s += &format!("alias elem = {};\n\n", dtype.wgsl());
    for p in shader.preludes() {
        s += p;
    }
    s += &matmul_gen::entry_points(shader);
    s += shader.file();
    s
}
