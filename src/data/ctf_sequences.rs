//! CTF sequences: consecutive lines with the same sequence id form one sequence, and each
//! line adds one step to every stream it holds, so the streams of a sequence may have
//! different lengths (a word's letters and its phonemes):
//!
//! ```text
//! 0 |letters 25:1 |phonemes 37:1
//! 0 |letters 4:1  |phonemes 17:1
//! 0 |letters 1:1
//! 1 |letters 17:1 |phonemes 27:1
//! ```
//!
//! A line without an id is a sequence of its own. An id that comes back after another
//! sequence is an error, as is a malformed line (naming the file, line and column) unless
//! the reader's `max_errors` allows skipping it. [`write_sequences`] writes the same format,
//! atomically, so that what it writes reads back equal.

use std::path::Path;

use super::ctf::{parse_fields, CtfReader, CtfReport, Storage, StreamSpec};
use crate::{Error, Result};

/// One sequence: its id and, per stream, the values of its steps (steps × dim, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct CtfSequence {
    /// The sequence id as written.
    pub id: String,
    /// Per declared stream, its steps' values.
    pub streams: Vec<Vec<f32>>,
}

/// Sequences read from CTF, with the streams they were read as.
#[derive(Clone, Debug, PartialEq)]
pub struct CtfSequences {
    /// The declared streams, in the order of [`CtfSequence::streams`].
    pub specs: Vec<StreamSpec>,
    /// The sequences in file order.
    pub sequences: Vec<CtfSequence>,
}

impl CtfSequences {
    /// Which of the declared streams is called `name`.
    pub fn stream(&self, name: &str) -> Result<usize> {
        self.specs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::Invalid(format!("CTF sequences: no stream called {name}")))
    }

    /// Steps of stream `stream` in sequence `seq`.
    pub fn steps(&self, seq: usize, stream: usize) -> usize {
        self.sequences[seq].streams[stream].len() / self.specs[stream].dim.max(1)
    }
}

impl CtfReader {
    /// Reads a file of sequences.
    pub fn read_sequences_file(&self, path: &Path) -> Result<(CtfSequences, CtfReport)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        self.read_sequences_str(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Reads CTF text of sequences.
    pub fn read_sequences_str(&self, text: &str) -> Result<(CtfSequences, CtfReport)> {
        let specs = self.streams().to_vec();
        let mut sequences: Vec<CtfSequence> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut report = CtfReport::default();
        for (k, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse_fields(self, line).and_then(|f| {
                let continues = f.id.is_some() && sequences.last().map(|s| s.id.as_str()) == f.id;
                match f.id {
                    Some(id) if !continues && seen.contains(id) => {
                        Err(format!("sequence id {id} comes back after other sequences"))
                    }
                    _ => Ok((f, continues)),
                }
            });
            let (f, continues) = match parsed {
                Ok(p) => p,
                Err(msg) => {
                    if report.skipped.len() >= self.allowed_errors() {
                        return Err(Error::Invalid(format!("CTF line {}: {msg}", k + 1)));
                    }
                    report.skipped.push((k + 1, msg));
                    continue;
                }
            };
            if f.comment_only {
                continue;
            }
            if !continues {
                // A line without an id is a sequence of its own, named by its line.
                let id =
                    f.id.map_or_else(|| format!("line{}", k + 1), str::to_string);
                seen.insert(id.clone());
                sequences.push(CtfSequence {
                    id,
                    streams: vec![Vec::new(); specs.len()],
                });
            }
            let seq = sequences.last_mut().expect("a sequence was just started");
            for (s, v) in seq.streams.iter_mut().zip(f.values) {
                if let Some(v) = v {
                    s.extend(v);
                }
            }
        }
        Ok((CtfSequences { specs, sequences }, report))
    }
}

/// The CTF text of `sequences` (streams as `specs` declare them): one line per step, each
/// holding every stream that still has a step.
pub fn sequences_to_string(specs: &[StreamSpec], sequences: &[CtfSequence]) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    for seq in sequences {
        if seq.id.is_empty() || seq.id.contains(char::is_whitespace) || seq.id.contains('|') {
            return Err(Error::Invalid(format!(
                "CTF: sequence id {:?} must be a non-empty word without |",
                seq.id
            )));
        }
        if seq.streams.len() != specs.len() {
            return Err(Error::Invalid(format!(
                "CTF: sequence {} has {} streams, the specs {}",
                seq.id,
                seq.streams.len(),
                specs.len()
            )));
        }
        let steps: Vec<usize> = specs
            .iter()
            .zip(&seq.streams)
            .map(|(sp, v)| match v.len() % sp.dim.max(1) {
                0 => Ok(v.len() / sp.dim.max(1)),
                _ => Err(Error::Invalid(format!(
                    "CTF: sequence {} stream {}: {} values, not whole steps of {}",
                    seq.id,
                    sp.name,
                    v.len(),
                    sp.dim
                ))),
            })
            .collect::<Result<_>>()?;
        let longest = steps.iter().copied().max().unwrap_or(0);
        if longest == 0 {
            return Err(Error::Invalid(format!(
                "CTF: sequence {} has no steps in any stream",
                seq.id
            )));
        }
        for t in 0..longest {
            out.push_str(&seq.id);
            for ((sp, v), &n) in specs.iter().zip(&seq.streams).zip(&steps) {
                if t >= n {
                    continue;
                }
                let _ = write!(out, " |{}", sp.name);
                for (i, x) in v[t * sp.dim..(t + 1) * sp.dim].iter().enumerate() {
                    match sp.storage {
                        Storage::Dense => {
                            let _ = write!(out, " {x}");
                        }
                        Storage::Sparse if *x != 0.0 => {
                            let _ = write!(out, " {i}:{x}");
                        }
                        Storage::Sparse => {}
                    }
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes `sequences` to `path` as CTF, atomically.
pub fn write_sequences(path: &Path, specs: &[StreamSpec], sequences: &[CtfSequence]) -> Result<()> {
    let text = sequences_to_string(specs, sequences)?;
    crate::files::write_atomic(path, text.as_bytes())
}
