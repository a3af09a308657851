//! Training: the [`Trainer`](trainer::Trainer) (CNTK's `train_minibatch` /
//! `test_minibatch` over an executor and a learner), [`fit`] (epochs with progress,
//! evaluation, early stopping), per-epoch [`records`], atomic safetensors
//! [`checkpoint`]s, [`plot`]s of the curves and [`edit_distance`] metrics (PER, WER). Records are what fit, plot and checkpoints
//! share, so none of them imports another's internals.
//!
//! Training that can stop and resume: a checkpoint after every epoch, written atomically,
//! continued exactly where it stopped when the run is started again.
//!
//! ```no_run
//! use wgrad::data::mnist;
//! use wgrad::nn::{Dense, Sequential};
//! use wgrad::{Context, FitOptions, Graph, Learner, Schedule, Trainer};
//! # fn main() -> wgrad::Result<()> {
//! let ctx = Context::new()?;
//! let (train, test) = mnist::load("data/mnist".as_ref())?;
//! let g = Graph::with_seed(1);
//! let x = g.input(mnist::IMAGES, &[784])?;
//! let y = g.input(mnist::LABELS, &[10])?;
//! let z = Sequential::new()
//!     .add(Dense::new(200).relu())
//!     .add(Dense::new(10))
//!     .build(&g, g.scale(x, 1.0 / 255.0)?)?;
//! let loss = g.cross_entropy_with_softmax(z, y)?;
//! let error = g.classification_error(z, y)?;
//! let learner = Learner::momentum_sgd(0.1, 0.9)
//!     .schedule(Schedule::Cosine { total: 1250, min_lr: 1e-3 })
//!     .warmup(100)
//!     .clip_norm(5.0);
//! let mut trainer = Trainer::new(&ctx, &g, loss, Some(error), learner)?;
//! let opts = FitOptions {
//!     epochs: 10,
//!     checkpoint: Some("mlp.safetensors".into()),
//!     resume: true,
//!     metrics_csv: Some("mlp.csv".into()),
//!     ..Default::default()
//! };
//! let inputs = [(mnist::IMAGES, x), (mnist::LABELS, y)];
//! let records = trainer.fit(&train, Some(&test), &inputs, &opts)?;
//! println!("test error {:.2}%", 100.0 * records.last().unwrap().test_metric);
//! # Ok(()) }
//! ```

pub mod checkpoint;
mod data_parallel;
pub mod edit_distance;
pub mod fit;
pub mod plot;
pub mod records;
pub mod trainer;
