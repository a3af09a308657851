//! Training: the [`Trainer`](trainer::Trainer) (CNTK's `train_minibatch` /
//! `test_minibatch` over an executor and a learner), [`fit`] (epochs with progress,
//! evaluation, early stopping), per-epoch [`records`], atomic safetensors
//! [`checkpoint`]s, [`plot`]s of the curves and [`edit_distance`] metrics (PER, WER). Records are what fit, plot and checkpoints
//! share, so none of them imports another's internals.

pub mod checkpoint;
pub mod edit_distance;
pub mod fit;
pub mod plot;
pub mod records;
pub mod trainer;
