//! The ops, one file per family (`sequence` holds the ops that mix the steps of sequences, `select` those that
//! pick steps onto a derived axis). Each file holds the [`Graph`](crate::Graph) methods that
//! build its ops and, beside them, their gradient rules (`grad_<family>`), so that an op's
//! forward and backward read side by side. Kernels are chosen for them in
//! `plan/kernel_choice.rs`; their WGSL is in `shaders/`.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod random;
pub mod recurrence;
pub mod reduce;
pub mod scan;
pub mod select;
pub mod sequence;

pub use conv::{Padding, WindowOpts};
