//! [`Trainer::fit`]: epochs over a dataset with a progress bar, evaluation after each epoch,
//! early stopping, checkpoints (resumable), and per-epoch metrics in a CSV file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::plot::plot_curves;
use super::records::{write_csv, EpochRecord};
use super::trainer::{MinibatchStats, Trainer};
use crate::data::{Dataset, MinibatchSource};
use crate::graph::NodeId;
use crate::{Error, Result};

/// Stop when the evaluation metric has not improved by `min_delta` for `patience` epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    pub min_delta: f32,
}

/// Options of [`Trainer::fit`].
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Epochs to train (in total, counting resumed ones).
    pub epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Seed of the per-epoch shuffling (`None`: data order).
    pub shuffle_seed: Option<u64>,
    /// Show a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
    /// Print one summary line per epoch on stdout.
    pub print_epochs: bool,
    /// Early stopping on the evaluation metric (lower is better).
    pub early_stopping: Option<EarlyStopping>,
    /// Write a checkpoint here after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Continue from `checkpoint` when it exists.
    pub resume: bool,
    /// Write the per-epoch metrics here as CSV after every epoch.
    pub metrics_csv: Option<PathBuf>,
    /// Draw the training curves into this PNG after every epoch.
    pub plot_png: Option<PathBuf>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 10,
            batch: 64,
            shuffle_seed: Some(0),
            progress: true,
            print_epochs: true,
            early_stopping: None,
            checkpoint: None,
            resume: false,
            metrics_csv: None,
            plot_png: None,
        }
    }
}

/// Builds the feed of a minibatch: stream `name` of the dataset goes to input `node`.
fn bind<'a>(
    names: &[&str],
    inputs: &[(&str, NodeId)],
    streams: &'a [Vec<f32>],
) -> Result<Vec<(NodeId, &'a [f32])>> {
    inputs
        .iter()
        .map(|(name, node)| {
            let k = names.iter().position(|n| n == name).ok_or_else(|| {
                Error::Invalid(format!(
                    "fit: the dataset has no stream {name} (it has {names:?})"
                ))
            })?;
            Ok((*node, &streams[k][..]))
        })
        .collect()
}

impl Trainer {
    /// Mean loss and metric over a whole dataset in evaluation mode (sample-weighted). A
    /// data-parallel trainer evaluates its rank's part of each minibatch and sums over the
    /// ranks, so every rank returns the whole dataset's figures.
    pub fn evaluate(
        &mut self,
        data: &Dataset,
        inputs: &[(&str, NodeId)],
        batch: usize,
    ) -> Result<MinibatchStats> {
        non_empty("evaluate", data, batch)?;
        let names = data.names();
        let shard = self.shard();
        // Sums of loss and metric weighted by samples, and the samples.
        let mut sums = [0f64; 3];
        let global = batch * shard.ranks;
        for mb in MinibatchSource::sharded(Arc::new(data.clone()), global, None, 0, 2, shard)? {
            if mb.len == 0 {
                continue;
            }
            let feed = bind(&names, inputs, &mb.streams)?;
            let s = self.evaluate_minibatch(&feed)?;
            sums[0] += s.loss as f64 * mb.len as f64;
            sums[1] += s.metric.unwrap_or(0.0) as f64 * mb.len as f64;
            sums[2] += mb.len as f64;
        }
        self.all_reduce_sums(&mut sums)?;
        let n = sums[2].max(1.0);
        Ok(MinibatchStats {
            loss: (sums[0] / n) as f32,
            metric: self.has_metric().then_some((sums[1] / n) as f32),
        })
    }

    /// Trains for `opts.epochs` epochs on `train`, evaluating on `test` after each epoch.
    /// `inputs` binds dataset streams to input nodes, e.g. `[("images", x), ("labels", y)]`.
    /// Returns the record of every epoch (including resumed ones).
    ///
    /// # Errors
    /// An empty dataset or batch size 0, a stream `inputs` names that the dataset lacks, a
    /// checkpoint that does not fit the model when resuming, a file that cannot be written,
    /// and every step's errors: [`Error::NonFinite`] names the step
    /// whose loss, gradient or update was not finite (its update was not applied).
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        inputs: &[(&str, NodeId)],
        opts: &FitOptions,
    ) -> Result<Vec<EpochRecord>> {
        non_empty("fit", train, opts.batch)?;
        if let Some(t) = test {
            non_empty("fit: the evaluation set", t, opts.batch)?;
        }
        // A step the caller left in flight is finished first (its statistics are theirs).
        self.finish_minibatches()?;
        let train_arc = Arc::new(train.clone());
        let mut state = self.resume(opts)?;
        for epoch in state.next_epoch..opts.epochs {
            let t0 = Instant::now();
            let (loss, metric, seen) = self.train_epoch(&train_arc, inputs, opts, epoch)?;
            let seconds = t0.elapsed().as_secs_f64();
            let (test_loss, test_metric) = match test {
                Some(t) => {
                    let s = self.evaluate(t, inputs, opts.batch.max(256))?;
                    (s.loss, s.metric.unwrap_or(f32::NAN))
                }
                None => (f32::NAN, f32::NAN),
            };
            let rec = EpochRecord {
                epoch: epoch + 1,
                train_loss: (loss / seen.max(1) as f64) as f32,
                train_metric: (metric / seen.max(1) as f64) as f32,
                test_loss,
                test_metric,
                examples_per_sec: seen as f64 / seconds.max(1e-9),
                seconds,
            };
            if opts.print_epochs && self.is_root() {
                println!("{}", epoch_line(&rec));
            }
            state.records.push(rec);
            // Early stopping on the evaluation metric (or loss), else on the training loss.
            let watched = [test_metric, test_loss, rec.train_loss]
                .into_iter()
                .find(|v| !v.is_nan())
                .unwrap_or(f32::NAN);
            if watched < state.best - opts.early_stopping.map_or(0.0, |e| e.min_delta) {
                state.best = watched;
                state.bad_epochs = 0;
            } else {
                state.bad_epochs += 1;
            }
            state.next_epoch = epoch + 1;
            self.save_epoch(&state, opts)?;
            if let Some(es) = opts.early_stopping {
                if state.bad_epochs >= es.patience {
                    if opts.print_epochs && self.is_root() {
                        println!(
                            "early stopping: no improvement for {} epochs (best {:.4})",
                            es.patience, state.best
                        );
                    }
                    break;
                }
            }
        }
        Ok(state.records)
    }

    /// Where `fit` starts: from the checkpoint when resuming and it exists, else afresh.
    fn resume(&mut self, opts: &FitOptions) -> Result<FitState> {
        let mut state = FitState {
            next_epoch: 0,
            best: f32::INFINITY,
            bad_epochs: 0,
            records: Vec::new(),
        };
        if let (true, Some(path)) = (opts.resume, &opts.checkpoint) {
            if path.exists() {
                let meta = self.load_checkpoint(path)?;
                state.next_epoch = parsed(&meta, "epoch").unwrap_or(0);
                state.best = parsed(&meta, "best").unwrap_or(f32::INFINITY);
                state.bad_epochs = parsed(&meta, "bad_epochs").unwrap_or(0);
                state.records = meta
                    .get("records")
                    .map(|r| r.lines().filter_map(EpochRecord::parse).collect())
                    .unwrap_or_default();
            }
        }
        Ok(state)
    }

    /// One epoch's training with a progress bar: the sample-weighted sums of loss and
    /// metric, and the examples seen.
    fn train_epoch(
        &mut self,
        train: &Arc<Dataset>,
        inputs: &[(&str, NodeId)],
        opts: &FitOptions,
        epoch: usize,
    ) -> Result<(f64, f64, usize)> {
        let names = train.names();
        // With data parallelism, `batch` samples per rank: each step trains on `global`.
        let shard = self.shard();
        let global = opts.batch * shard.ranks;
        let per_epoch = train.len().div_ceil(global);
        let bar = if opts.progress && self.is_root() {
            ProgressBar::new(per_epoch as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, opts.epochs));
        let t0 = Instant::now();
        let (mut loss, mut metric, mut seen) = (0.0f64, 0.0f64, 0usize);
        let mut in_flight: Option<usize> = None;
        let source = MinibatchSource::sharded(
            train.clone(),
            global,
            opts.shuffle_seed,
            epoch as u64,
            4,
            shard,
        )?;
        for (k, mb) in source.enumerate() {
            let feed = bind(&names, inputs, &mb.streams)?;
            // The loss of each step is read while the next one runs.
            let previous = self.train_minibatch_pipelined(&feed)?;
            if let Some(s) = previous {
                let len = in_flight.take().expect("a step was in flight");
                tally(s, len, &mut loss, &mut metric, &mut seen);
            }
            // The statistics are the whole step's: every rank's shards together.
            in_flight = Some(global.min(train.len() - k * global));
            let rate = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} metric {:.4} {:.0} ex/s",
                loss / seen.max(1) as f64,
                metric / seen.max(1) as f64,
                rate
            ));
            bar.inc(1);
        }
        if let (Some(s), Some(len)) = (self.finish_minibatches()?, in_flight) {
            tally(s, len, &mut loss, &mut metric, &mut seen);
        }
        bar.finish_and_clear();
        Ok((loss, metric, seen))
    }

    /// Writes what `opts` asks for after an epoch: the CSV, the curves, the checkpoint.
    fn save_epoch(&mut self, state: &FitState, opts: &FitOptions) -> Result<()> {
        if !self.is_root() {
            return Ok(());
        }
        if let Some(path) = &opts.metrics_csv {
            write_csv(path, &state.records)?;
        }
        if let Some(path) = &opts.plot_png {
            plot_curves(path, &state.records)?;
        }
        if let Some(path) = &opts.checkpoint {
            let mut meta = HashMap::new();
            meta.insert("epoch".to_string(), state.next_epoch.to_string());
            meta.insert("best".to_string(), state.best.to_string());
            meta.insert("bad_epochs".to_string(), state.bad_epochs.to_string());
            let lines: Vec<String> = state.records.iter().map(|r| r.csv()).collect();
            meta.insert("records".to_string(), lines.join("\n"));
            self.save_checkpoint(path, &meta)?;
        }
        Ok(())
    }
}

/// The checkpoint metadata `key`, parsed.
fn parsed<T: std::str::FromStr>(meta: &HashMap<String, String>, key: &str) -> Option<T> {
    meta.get(key).and_then(|e| e.parse().ok())
}

/// Where a `fit` stands between epochs (what a checkpoint keeps).
struct FitState {
    /// The next epoch to train (0-based).
    next_epoch: usize,
    /// The best watched value so far.
    best: f32,
    /// Epochs since it last improved.
    bad_epochs: usize,
    records: Vec<EpochRecord>,
}

/// The line `fit` prints for an epoch; values it did not measure (no metric, no evaluation
/// set) are left out rather than printed as NaN.
fn epoch_line(r: &EpochRecord) -> String {
    let part = |name: &str, v: f32| match v.is_nan() {
        true => String::new(),
        false => format!(" {name} {v:.4}"),
    };
    let mut line = format!(
        "epoch {:>3}: train{}{}",
        r.epoch,
        part("loss", r.train_loss),
        part("metric", r.train_metric)
    );
    if !(r.test_loss.is_nan() && r.test_metric.is_nan()) {
        line += &format!(
            " | test{}{}",
            part("loss", r.test_loss),
            part("metric", r.test_metric)
        );
    }
    line + &format!(" | {:.0} examples/s", r.examples_per_sec)
}

/// An empty dataset or a batch size of 0 is an error for `what`, not a loss of 0.
fn non_empty(what: &str, data: &Dataset, batch: usize) -> Result<()> {
    if data.is_empty() {
        return Err(Error::Invalid(format!("{what}: the dataset is empty")));
    }
    if batch == 0 {
        return Err(Error::Invalid(format!("{what}: the batch size is 0")));
    }
    Ok(())
}

/// Adds one minibatch's statistics, weighted by its length, to an epoch's sums.
fn tally(s: MinibatchStats, len: usize, loss: &mut f64, metric: &mut f64, seen: &mut usize) {
    *loss += s.loss as f64 * len as f64;
    *metric += s.metric.unwrap_or(f32::NAN) as f64 * len as f64;
    *seen += len;
}
