//! The kernels: WGSL sources, the typed contract between Rust and WGSL, pipelines, and
//! binding buffers to them.
//!
//! - [`source`]: the shader families (one `.wgsl` file each) and the one function that
//!   produces their text.
//! - `contract`: parameter blocks and codes, defined once in Rust; WGSL gets them from
//!   a generated prelude.
//! - `kernel`: one pipeline per `Kernel` — entry point, bindings, constants, compilation.
//! - `matmul_gen`: the generated, written-out matmul entry points.
//! - `binding`: buffer slices, bind groups, workgroup counts, one-off dispatches.
//! - `textures`: product operands read from textures on CPU adapters.

pub(crate) mod binding;
pub(crate) mod contract;
pub(crate) mod kernel;
pub(crate) mod matmul_gen;
pub mod source;
pub(crate) mod textures;

pub(crate) use binding::{bind_group, groups_1d, groups_per_item, run_once, Slice};
pub(crate) use contract::{Act, Epilogue, Params, TEXTURE_WIDTH};
pub(crate) use kernel::{pipeline, precompile, Gather, Kernel, Rule, ScanIo, StepPart};
pub(crate) use matmul_gen::{SUBGROUP_BLOCKS, TEXTURE_BLOCKS};
pub use source::Shader;
