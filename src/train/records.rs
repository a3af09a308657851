//! Per-epoch training records: what `fit` returns, writes as CSV, keeps in checkpoints and
//! draws as curves.

use std::path::Path;

use crate::Result;

/// Metrics of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches (sample-weighted).
    pub train_loss: f32,
    /// Mean training metric (NaN without a metric).
    pub train_metric: f32,
    /// Loss on the evaluation set (NaN without one).
    pub test_loss: f32,
    /// Metric on the evaluation set (NaN without one).
    pub test_metric: f32,
    /// Training throughput.
    pub examples_per_sec: f64,
    /// Wall time of the epoch's training.
    pub seconds: f64,
}

impl EpochRecord {
    /// The CSV header matching [`EpochRecord::csv`].
    pub(crate) const CSV_HEADER: &'static str =
        "epoch,train_loss,train_metric,test_loss,test_metric,examples_per_sec,seconds";

    /// The record as one CSV line.
    pub(crate) fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{:.1},{:.3}",
            self.epoch,
            self.train_loss,
            self.train_metric,
            self.test_loss,
            self.test_metric,
            self.examples_per_sec,
            self.seconds
        )
    }

    /// Parses a line written by [`EpochRecord::csv`].
    pub(crate) fn parse(line: &str) -> Option<EpochRecord> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return None;
        }
        Some(EpochRecord {
            epoch: f[0].parse().ok()?,
            train_loss: f[1].parse().ok()?,
            train_metric: f[2].parse().ok()?,
            test_loss: f[3].parse().ok()?,
            test_metric: f[4].parse().ok()?,
            examples_per_sec: f[5].parse().ok()?,
            seconds: f[6].parse().ok()?,
        })
    }
}

/// Writes `records` as CSV to `path`, atomically.
pub(crate) fn write_csv(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut text = String::from(EpochRecord::CSV_HEADER);
    for r in records {
        text.push('\n');
        text.push_str(&r.csv());
    }
    text.push('\n');
    super::checkpoint::write_atomic(path, text.as_bytes())
}
