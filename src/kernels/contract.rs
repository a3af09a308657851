//! The Rust↔WGSL contract, defined once here: every kernel's parameter block as a
//! `#[repr(C)]` Pod struct, and every op, activation, epilogue and fill code as a named
//! enum. The WGSL side gets the same structs and codes from a generated prelude
//! ([`prelude`]), so no shader repeats a number or a field order by hand.

use std::fmt::Debug;

use bytemuck::{Pod, Zeroable};

use crate::device::PARAMS_SIZE;
use crate::graph::{BinaryOp, ReduceOp, UnaryOp};
use crate::ops::elementwise::UnaryCode;

/// Declares parameter blocks: each a Pod struct whose WGSL declaration is generated from
/// the same field list (`u32x8` is eight `u32`s, WGSL's `array<vec4<u32>, 2>`).
macro_rules! blocks {
    ($( $(#[$doc:meta])* $name:ident { $($field:ident : $ty:tt),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
            pub(crate) struct $name { $(pub $field: blocks!(@rust $ty)),* }

            impl $name {
                /// The WGSL declaration of this block, as `struct {wgsl_name}`.
                pub(crate) fn wgsl(wgsl_name: &str) -> String {
                    let mut s = format!("struct {wgsl_name} {{\n");
                    $( s.push_str(&format!("    {}: {},\n", stringify!($field), blocks!(@wgsl $ty))); )*
                    s.push_str("}\n");
                    s
                }
            }
        )*
        /// Every block's size in bytes, for the layout test.
        #[cfg(test)]
        pub(crate) const BLOCK_SIZES: &[(&str, usize)] =
            &[$((stringify!($name), std::mem::size_of::<$name>())),*];
    };
    (@rust u32) => { u32 };
    (@rust f32) => { f32 };
    (@rust u32x8) => { [u32; 8] };
    (@wgsl u32) => { "u32" };
    (@wgsl f32) => { "f32" };
    (@wgsl u32x8) => { "array<vec4<u32>, 2>" };
}

blocks! {
    /// A count of elements (bias) or of batch items (window kernels).
    CountParams { n: u32, _p0: u32, _p1: u32, _p2: u32 }
    /// optim.wgsl: `n` parameters of update run `run`; `check` 1 for the pass that only
    /// looks for non-finite values (the numerics guard), 0 for the one that writes;
    /// `loss_n` per-sample losses the check of run 0 also looks at.
    UpdateParams { n: u32, check: u32, run: u32, loss_n: u32 }
    /// unary.wgsl: `y = alpha · f(x)`.
    UnaryParams { n: u32, op: u32, alpha: f32, _p0: u32 }
    /// binary.wgsl: `alpha · f(a, b)` with operand strides over up to 8 output axes (all
    /// zero when both operands have the output's shape).
    BinaryParams { n: u32, rank: u32, op: u32, alpha: f32, dims: u32x8, sa: u32x8, sb: u32x8 }
    /// product.wgsl: `C = alpha · op(A)·op(B)` of sizes m×k·k×n; `zsum` batch items summed
    /// into one output, `a_batch`/`b_batch` floats between batch items (0: shared).
    ProductParams { m: u32, n: u32, k: u32, zsum: u32, a_batch: u32, b_batch: u32, alpha: f32, _p0: u32 }
    /// copy.wgsl: `[outer, len, inner]` copies (concat, slice, pad, one-hot).
    CopyParams { outer: u32, len_a: u32, len_out: u32, inner: u32, begin: u32, _p0: u32, _p1: u32, _p2: u32 }
    /// fill.wgsl: fills (`op` a [`FillCode`]) and dropout (`a` the drop probability, `b`
    /// the kept elements' scale), keyed by a 64-bit seed.
    FillParams { n: u32, op: u32, seed_lo: u32, seed_hi: u32, a: f32, b: f32, _p0: u32, _p1: u32 }
    /// reduce.wgsl: `[outer, len, inner]` reduced over `len` (`op` a [`ReduceOp`]).
    ReduceParams { outer: u32, len: u32, inner: u32, op: u32 }
    /// softmax.wgsl: `[outer, len, inner]` along `len` (`log` 1 for log-softmax).
    SoftmaxParams { outer: u32, len: u32, inner: u32, log: u32 }
    /// sequence.wgsl: `[batch, steps, inner]` sequence tensors.
    SeqParams { batch: u32, steps: u32, inner: u32, _p0: u32 }
    /// attention.wgsl: queries on `steps_q` padded steps, keys on `steps_k`, `width` features
    /// in the kernel's feature loop (A for scores, E for values).
    AttnParams { batch: u32, steps_q: u32, steps_k: u32, width: u32 }
    /// recurrence.wgsl, lstm_step.wgsl and gru.wgsl: `batch` sequences of `steps` (padded)
    /// steps, `hidden` units; `step`, the iteration of a kernel run once per step.
    ScanParams { batch: u32, steps: u32, hidden: u32, step: u32 }
    /// scan_step.wgsl: a general scan's step values `[batch, inner]` read from or written to
    /// `[batch, steps, width]` sequences at float `offset` of each step; `step` the
    /// iteration; `backwards` and `reverse` 0 or 1 (`ScanSpec`).
    StepParams { batch: u32, steps: u32, inner: u32, step: u32, width: u32, offset: u32, backwards: u32, reverse: u32 }
    /// loss.wgsl: rows of `classes` scores; the incoming gradient is one value when
    /// `g_scalar`, scaled by `g_scale`.
    LossParams { rows: u32, classes: u32, g_scalar: u32, g_scale: f32 }
    /// optim.wgsl's `Hyper`: learning rate, momentum (β1, ρ), β2, ε, L2, decoupled decay,
    /// Adam's bias corrections `1/(1-β^t)`, Nesterov (0 or 1).
    /// `step` is the training step about to run (low 32 bits), recorded by the guard.
    /// The device fills the last two in each step (plan/emit.rs): `clip`, the global-norm
    /// clipping factor (1 without clipping), before the check passes, and `flagged`, the
    /// guard's word 0, before the apply passes.
    Hyper { lr: f32, mu: f32, beta2: f32, eps: f32, wd: f32, dwd: f32, c1: f32, c2: f32, nesterov: u32, step: u32, clip: f32, flagged: u32 }
    /// fill.wgsl's `Runtime`: the executor's per-call values (the training step).
    Runtime { step: u32, _p0: u32, _p1: u32, _p2: u32 }
}

/// One dispatch's parameter block (binding 0), of the layout its kernel's shader declares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Params {
    Count(CountParams),
    Update(UpdateParams),
    Unary(UnaryParams),
    Binary(BinaryParams),
    Product(ProductParams),
    Copy(CopyParams),
    Fill(FillParams),
    Reduce(ReduceParams),
    Softmax(SoftmaxParams),
    Loss(LossParams),
    Seq(SeqParams),
    Scan(ScanParams),
    Step(StepParams),
    Attn(AttnParams),
}

impl Params {
    /// This block at iteration `step` of a kernel run once per step (a scan block's
    /// `step`); other blocks are returned unchanged.
    pub(crate) fn at_step(&self, step: usize) -> Params {
        match self {
            Params::Scan(p) => Params::Scan(ScanParams {
                step: step as u32,
                ..*p
            }),
            Params::Step(p) => Params::Step(StepParams {
                step: step as u32,
                ..*p
            }),
            other => *other,
        }
    }

    /// A count block of `n`.
    pub(crate) fn count(n: usize) -> Params {
        Params::Count(CountParams {
            n: n as u32,
            ..Default::default()
        })
    }

    /// The block's bytes, as the uniform buffer holds them.
    pub(crate) fn bytes(&self) -> &[u8] {
        let b = match self {
            Params::Count(p) => bytemuck::bytes_of(p),
            Params::Update(p) => bytemuck::bytes_of(p),
            Params::Unary(p) => bytemuck::bytes_of(p),
            Params::Binary(p) => bytemuck::bytes_of(p),
            Params::Product(p) => bytemuck::bytes_of(p),
            Params::Copy(p) => bytemuck::bytes_of(p),
            Params::Fill(p) => bytemuck::bytes_of(p),
            Params::Reduce(p) => bytemuck::bytes_of(p),
            Params::Softmax(p) => bytemuck::bytes_of(p),
            Params::Loss(p) => bytemuck::bytes_of(p),
            Params::Seq(p) => bytemuck::bytes_of(p),
            Params::Scan(p) => bytemuck::bytes_of(p),
            Params::Step(p) => bytemuck::bytes_of(p),
            Params::Attn(p) => bytemuck::bytes_of(p),
        };
        debug_assert!(b.len() as u64 <= PARAMS_SIZE);
        b
    }
}

/// binary.wgsl's code that copies its first operand (broadcasts and permutations).
pub(crate) const BINARY_FIRST: u32 = 99;

/// An activation fused into a kernel (the `ACT` pipeline constant of activation.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub(crate) enum Act {
    None = 0,
    Relu,
    Sigmoid,
    Tanh,
}

impl Act {
    /// The fused form of an activation: relu, sigmoid or tanh (anything else is tanh's
    /// slot and never reaches here; `bias_act` rejects it).
    pub(crate) fn of(act: Option<UnaryOp>) -> Act {
        match act {
            None => Act::None,
            Some(UnaryOp::Relu) => Act::Relu,
            Some(UnaryOp::Sigmoid) => Act::Sigmoid,
            Some(_) => Act::Tanh,
        }
    }

    const ALL: [Act; 4] = [Act::None, Act::Relu, Act::Sigmoid, Act::Tanh];
}

/// What a product's epilogue does with its result (the `EPI` pipeline constant of
/// product.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub(crate) enum Epilogue {
    /// Stores the product.
    None = 0,
    /// Adds a bias per column, then the activation (dense layers).
    BiasPerColumn,
    /// Adds a bias per row, then the activation (convolutions, one row per filter).
    BiasPerRow,
    /// Multiplies by the activation's slope at the side input (an activation's gradient).
    ActivationSlope,
}

impl Epilogue {
    const ALL: [Epilogue; 4] = [
        Epilogue::None,
        Epilogue::BiasPerColumn,
        Epilogue::BiasPerRow,
        Epilogue::ActivationSlope,
    ];
}

/// fill.wgsl's fills (`FillParams::op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum FillCode {
    Const = 0,
    Uniform,
    Normal,
    Nan,
}

impl FillCode {
    const ALL: [FillCode; 4] = [
        FillCode::Const,
        FillCode::Uniform,
        FillCode::Normal,
        FillCode::Nan,
    ];
}

/// Texels per row of the operand textures of CPU products: 16 KiB, a multiple of the
/// 256-byte row alignment of copies.
pub(crate) const TEXTURE_WIDTH: usize = 1024;

/// `ReluGrad` → `RELU_GRAD`.
fn screaming(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    s
}

/// `const {PREFIX}_{NAME}: u32 = {code}u;` for each item.
fn consts<T: Debug + Copy>(prefix: &str, items: &[T], code: impl Fn(T) -> u32) -> String {
    items
        .iter()
        .map(|&t| {
            let name = screaming(&format!("{t:?}"));
            format!("const {prefix}_{name}: u32 = {}u;\n", code(t))
        })
        .collect()
}

/// The generated prelude of every shader: all codes as named constants.
pub(crate) fn prelude() -> String {
    let mut s = String::from("// Generated from src/kernels/contract.rs.\n");
    s += &consts("UNARY", &UnaryCode::ALL, |c| c as u32);
    s += &consts("BINARY", &BinaryOp::ALL, |c| c.code());
    s += &format!("const BINARY_FIRST: u32 = {BINARY_FIRST}u;\n");
    s += &consts("REDUCE", &ReduceOp::ALL, |c| c.code());
    s += &consts("ACT", &Act::ALL, |c| c as u32);
    s += &consts("EPI", &Epilogue::ALL, |c| c as u32);
    s += &consts("FILL", &FillCode::ALL, |c| c as u32);
    s += &format!("const TEXTURE_WIDTH: u32 = {TEXTURE_WIDTH}u;\n");
    s += NAN_EXTREMA;
    s += &format!(
        "const GUARD_LOSS: u32 = {}u;\nconst GUARD_GRADIENT: u32 = {}u;\nconst GUARD_UPDATE: u32 = {}u;\nconst GUARD_RUNS: u32 = {}u;\n",
        GUARD_LOSS, GUARD_GRADIENT, GUARD_UPDATE, GUARD_RUNS
    );
    s
}

/// Numerics guard words (optim.wgsl): word 0 holds these bits, word 1 the first flagged
/// step, and from word [`GUARD_RUNS`] on each update run has two words: the first vec4
/// index with a non-finite gradient, then the first whose update would be non-finite.
pub(crate) const GUARD_LOSS: u32 = 1;
/// A gradient was non-finite (see [`GUARD_LOSS`]).
pub(crate) const GUARD_GRADIENT: u32 = 2;
/// An update would have made a parameter or learner state non-finite.
pub(crate) const GUARD_UPDATE: u32 = 4;
/// The guard word where the per-run words start.
pub(crate) const GUARD_RUNS: u32 = 4;

/// Extrema that propagate NaN (as PyTorch's do): WGSL's `max`/`min` may return either
/// operand when one is NaN. NaN is tested on the bits, which no fast-math folding removes.
const NAN_EXTREMA: &str = "\
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn max_nan(a: f32, b: f32) -> f32 { return select(select(max(a, b), b, is_nan(b)), a, is_nan(a)); }
fn min_nan(a: f32, b: f32) -> f32 { return select(select(min(a, b), b, is_nan(b)), a, is_nan(a)); }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_fits_a_uniform_slot() {
        for &(name, size) in BLOCK_SIZES {
            assert!(
                size % 16 == 0 && size as u64 <= PARAMS_SIZE,
                "{name}: {size} bytes"
            );
        }
    }

    #[test]
    fn codes_are_named_in_wgsl() {
        let p = prelude();
        for line in [
            "const UNARY_SOFTPLUS: u32 = 9u;",
            "const BINARY_RELU_GRAD: u32 = 11u;",
            "const REDUCE_MAX: u32 = 2u;",
            "const ACT_TANH: u32 = 3u;",
            "const EPI_ACTIVATION_SLOPE: u32 = 3u;",
            "const FILL_NAN: u32 = 3u;",
        ] {
            assert!(p.contains(line), "{line} missing from\n{p}");
        }
        let s = ProductParams::wgsl("Params");
        assert!(
            s.contains("    alpha: f32,\n") && s.starts_with("struct Params {"),
            "{s}"
        );
    }
}
