//! # wgrad
//!
//! A deep-learning framework whose every number is computed by WGSL compute shaders through
//! wgpu: on any GPU vendor (Vulkan, Metal, DX12) and, through Mesa's lavapipe, on machines
//! with no GPU at all.
//!
//! A model is a [`Graph`] of ops over inputs (fed at each call, with a batch axis) and
//! parameters (kept on the device). [`Graph::grad`] appends the backward graph; an
//! [`Executor`] plans buffers once per batch size and records a whole step into one command
//! encoder; a [`Trainer`] adds a learner and CNTK's `train_minibatch` / `test_minibatch`.
//!
//! ```no_run
//! use wgrad::{Context, Graph, Init, Sgd, Trainer};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let g = Graph::new();
//! let x = g.input("features", &[2])?;
//! let y = g.input("labels", &[2])?;
//! let w = g.parameter("w", &[2, 2], Init::GlorotUniform)?;
//! let b = g.parameter("b", &[2], Init::Zeros)?;
//! let z = g.add(g.matmul(x, w)?, b)?;
//! let loss = g.cross_entropy_with_softmax(z, y)?;
//! let error = g.classification_error(z, y)?;
//! let mut trainer = Trainer::new(&ctx, &g, loss, Some(error), Sgd::new(0.5))?;
//! let stats = trainer.train_minibatch(&[(x, &[1.0, 2.0][..]), (y, &[0.0, 1.0][..])], true)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)]

pub mod data;
pub mod device;
pub mod distributed;
pub mod dtype;
pub mod error;
pub mod executor;
pub mod files;
pub mod graph;
pub mod kernels;
pub mod nn;
pub mod onnx;
pub mod ops;
pub mod optim;
mod plan;
pub mod shape;
pub mod tensor;
pub mod train;

pub use device::{
    AdapterSummary, Context, ContextOptions, Fault, LstmKernels, MemoryUse, OperandTextures,
};
pub use dtype::DType;
pub use error::{Error, Result};
pub use executor::{Executor, Feed};
pub use train::fit::{EarlyStopping, FitOptions};
pub use train::records::EpochRecord;
// The training modules keep their earlier paths (`wgrad::fit`, `wgrad::trainer`, …).
pub use graph::{AttnPart, BinaryOp, Graph, Init, NodeId, Op, ReduceOp, UnaryOp, Window};
pub use kernels::Shader;
pub use ops::{Padding, WindowOpts};
pub use optim::lbfgs;
pub use optim::{Algorithm, Learner, Schedule, Sgd};
pub use plan::summary::{Activation, DispatchSummary, Fused, PlanSummary, Role};
pub use shape::{Dim, Shape, Sizes};
pub use tensor::{Fill, Tensor};
pub use train::trainer::{MinibatchStats, Trainer};
pub use train::{checkpoint, edit_distance, fit, plot, trainer};
