//! CNTK Text Format (CTF) for non-sequence samples:
//!
//! ```text
//! |features 0.5 1.25 |labels 1:1   |# a comment
//! 7 |features 2 3 |labels 0:1
//! ```
//!
//! Each line is one sample: an optional sample id, then `|name values` fields in any order.
//! Dense fields list every value; sparse fields list `index:value` pairs (absent indices are
//! 0, and a sparse stream may be missing from a line). `|#` starts a comment that runs to the
//! next `|` or the end of the line. Lines may end in `\n` or `\r\n`. A malformed line is an
//! error naming its line number and column, unless `max_errors` allows skipping it (CNTK's
//! maxErrors). A `|name` the reader was not given is an error (a misspelt label stream would
//! otherwise read as all zeros) unless [`CtfReader::ignore_streams`] names it; values that are
//! not finite (`nan`, `inf`) are errors. Several lines with the same id form a sequence: [`CtfReader::read_str`]
//! rejects them; [`CtfReader::read_sequences_str`] reads them (see [`super::ctf_sequences`]).

use std::path::Path;

use super::Dataset;
use crate::{Error, Result};

/// How one stream is stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// All `dim` values on each line.
    Dense,
    /// `index:value` pairs.
    Sparse,
}

/// A stream to read: its name in the file, dimension and storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// The `|name` in the file.
    pub name: String,
    /// Values per sample.
    pub dim: usize,
    /// Dense or sparse.
    pub storage: Storage,
}

/// Reads CTF files into a [`Dataset`] with one stream per [`StreamSpec`].
#[derive(Clone, Debug)]
pub struct CtfReader {
    streams: Vec<StreamSpec>,
    max_errors: usize,
    /// Stream names in the file to skip (`*` skips every undeclared one).
    ignored: Vec<String>,
}

/// What a successful read skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CtfReport {
    /// `(line number, message)` of each skipped line.
    pub skipped: Vec<(usize, String)>,
}

impl CtfReader {
    /// A reader for the given streams; a stream in the file that is neither declared nor
    /// ignored ([`CtfReader::ignore_streams`]) is an error.
    pub fn new(streams: &[(&str, usize, Storage)]) -> CtfReader {
        CtfReader {
            streams: streams
                .iter()
                .map(|&(n, d, s)| StreamSpec {
                    name: n.into(),
                    dim: d,
                    storage: s,
                })
                .collect(),
            max_errors: 0,
            ignored: Vec::new(),
        }
    }

    /// Skips these undeclared streams of the file (`"*"`: every undeclared stream).
    pub fn ignore_streams(mut self, names: &[&str]) -> CtfReader {
        self.ignored.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Tolerates up to `n` malformed lines (skipped and reported) before failing.
    pub fn max_errors(mut self, n: usize) -> CtfReader {
        self.max_errors = n;
        self
    }

    /// Reads a file.
    ///
    /// # Errors
    /// An unreadable file, or more malformed lines than `max_errors` allows: a stream that
    /// was not declared, a value that is not a finite number, an index out of range, a sample
    /// of the wrong width (each named with the file, line and column).
    pub fn read_file(&self, path: &Path) -> Result<(Dataset, CtfReport)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        self.read_str(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Reads CTF text.
    pub fn read_str(&self, text: &str) -> Result<(Dataset, CtfReport)> {
        let mut data: Vec<Vec<f32>> = vec![Vec::new(); self.streams.len()];
        let mut report = CtfReport::default();
        let mut last_id: Option<String> = None;
        for (k, raw) in text.lines().enumerate() {
            let line_no = k + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            match self.parse_line(line, &mut last_id) {
                Ok(None) => {}
                Ok(Some(sample)) => {
                    for (d, s) in data.iter_mut().zip(sample) {
                        d.extend(s);
                    }
                }
                Err(msg) => {
                    if report.skipped.len() >= self.max_errors {
                        let allowed = if self.max_errors > 0 {
                            format!(" (more than {} bad lines)", self.max_errors)
                        } else {
                            String::new()
                        };
                        return Err(Error::Invalid(format!(
                            "CTF line {line_no}: {msg}{allowed}"
                        )));
                    }
                    report.skipped.push((line_no, msg));
                }
            }
        }
        let mut ds = Dataset::new();
        for (spec, d) in self.streams.iter().zip(data) {
            ds = ds.with_stream(&spec.name, spec.dim, d)?;
        }
        Ok((ds, report))
    }

    /// One sample's values per stream, `None` for a comment-only line.
    fn parse_line(
        &self,
        line: &str,
        last_id: &mut Option<String>,
    ) -> std::result::Result<Option<Vec<Vec<f32>>>, String> {
        let f = parse_fields(self, line)?;
        if let Some(id) = f.id {
            if last_id.as_deref() == Some(id) {
                return Err(format!(
                    "sample id {id} repeats: read sequences with CtfReader::read_sequences"
                ));
            }
            *last_id = Some(id.to_string());
        }
        if f.comment_only {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(f.values.len());
        for (spec, v) in self.streams.iter().zip(f.values) {
            match (v, spec.storage) {
                (Some(v), _) => out.push(v),
                (None, Storage::Sparse) => out.push(vec![0.0; spec.dim]),
                (None, Storage::Dense) => return Err(format!("stream {} is missing", spec.name)),
            }
        }
        Ok(Some(out))
    }

    /// The declared streams.
    pub fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    /// How many malformed lines a read may skip.
    pub(super) fn allowed_errors(&self) -> usize {
        self.max_errors
    }
}

/// What one line holds: its id, each declared stream's values where the line has them, and
/// whether it holds nothing but comments.
pub(super) struct Fields<'a> {
    pub id: Option<&'a str>,
    pub values: Vec<Option<Vec<f32>>>,
    pub comment_only: bool,
}

/// Parses one line's fields; errors name the column (1-based) where the problem starts.
pub(super) fn parse_fields<'a>(
    reader: &CtfReader,
    line: &'a str,
) -> std::result::Result<Fields<'a>, String> {
    let streams = &reader.streams;
    let column = |part: &str| part.as_ptr() as usize - line.as_ptr() as usize + 1;
    let Some(p) = line.find('|') else {
        return Err("no |field on the line".into());
    };
    let id = Some(line[..p].trim()).filter(|i| !i.is_empty());
    let mut values: Vec<Option<Vec<f32>>> = vec![None; streams.len()];
    let mut comment_only = true;
    for field in line[p..].split('|').skip(1) {
        if field.starts_with('#') {
            continue;
        }
        comment_only = false;
        let mut parts = field.split_whitespace();
        let Some(name) = parts.next() else {
            return Err(format!(
                "column {}: empty field name after |",
                column(field)
            ));
        };
        let Some(si) = streams.iter().position(|s| s.name == name) else {
            if reader.ignored.iter().any(|i| i == name || i == "*") {
                continue;
            }
            let declared: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "column {}: stream {name} is not one of the declared {declared:?} (CtfReader::ignore_streams skips it)",
                column(name)
            ));
        };
        if values[si].is_some() {
            return Err(format!(
                "column {}: stream {name} appears twice",
                column(name)
            ));
        }
        let at = |tok: &str, m: String| format!("column {}: stream {name}: {m}", column(tok));
        let spec = &streams[si];
        let mut v = vec![0.0f32; spec.dim];
        let mut count = 0;
        for tok in parts {
            match (spec.storage, tok.split_once(':')) {
                (Storage::Sparse, Some((i, x))) => {
                    let i: usize = i
                        .parse()
                        .map_err(|_| at(tok, format!("bad index in {tok:?}")))?;
                    if i >= spec.dim {
                        let m = format!("index {i} is not below its dimension {}", spec.dim);
                        return Err(at(tok, m));
                    }
                    v[i] = finite(
                        x.parse()
                            .map_err(|_| at(tok, format!("bad value in {tok:?}")))?,
                    )
                    .map_err(|m| at(tok, m))?;
                }
                (Storage::Dense, None) => {
                    if count >= spec.dim {
                        return Err(at(tok, format!("more than {} values", spec.dim)));
                    }
                    v[count] = finite(
                        tok.parse()
                            .map_err(|_| at(tok, format!("{tok:?} is not a number")))?,
                    )
                    .map_err(|m| at(tok, m))?;
                }
                (Storage::Sparse, None) => {
                    return Err(at(tok, format!("{tok:?} is not index:value")))
                }
                (Storage::Dense, Some(_)) => {
                    return Err(at(
                        tok,
                        format!("{tok:?} is sparse but the stream is dense"),
                    ))
                }
            }
            count += 1;
        }
        if spec.storage == Storage::Dense && count != spec.dim {
            let m = format!("{count} values, expected {}", spec.dim);
            return Err(at(name, m));
        }
        values[si] = Some(v);
    }
    Ok(Fields {
        id,
        values,
        comment_only,
    })
}

/// A value read from a file must be finite.
fn finite(v: f32) -> std::result::Result<f32, String> {
    match v.is_finite() {
        true => Ok(v),
        false => Err(format!("{v} is not a finite number")),
    }
}
