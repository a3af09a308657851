//! MNIST in the IDX format: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, raw or gzip-compressed (`.gz`).
//! Works for the full 60k/10k files a user downloads and for any subset in the same format.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

/// The `images` stream: 784 pixel values in 0..=255 per sample.
pub const IMAGES: &str = "images";
/// The `labels` stream: one-hot rows of 10.
pub const LABELS: &str = "labels";

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Invalid(format!("{}: {}", path.display(), msg.into()))
}

/// Reads a whole file, decompressing gzip when it starts with gzip's magic bytes.
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: its dimensions and data, after checking the magic
/// number, the number of dimensions and that the data length matches them exactly.
pub fn read_idx(path: &Path, expect_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = read_maybe_gzip(path)?;
    if bytes.len() < 4 {
        return Err(bad(
            path,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            path,
            format!(
                "bad magic number {:02x}{:02x}{:02x}{:02x} (not an IDX file)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(bad(
            path,
            format!(
                "element type 0x{:02x} is not unsigned bytes (0x08)",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim != expect_dims {
        return Err(bad(
            path,
            format!("{ndim} dimensions, expected {expect_dims}"),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(path, "truncated header"));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let n: usize = dims.iter().product();
    let have = bytes.len() - header;
    if have != n {
        return Err(bad(
            path,
            format!(
                "dimensions {dims:?} need {n} data bytes, the file has {have} ({})",
                if have < n {
                    "truncated"
                } else {
                    "trailing data"
                }
            ),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::Invalid(format!(
        "{}: neither {stem} nor {stem}.gz exists",
        dir.display()
    )))
}

/// Loads one split (`train` or `t10k`) as a dataset with streams [`IMAGES`] and [`LABELS`].
pub fn load_split(dir: &Path, split: &str) -> Result<Dataset> {
    let ip = find(dir, &format!("{split}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{split}-labels-idx1-ubyte"))?;
    let (idims, pixels) = read_idx(&ip, 3)?;
    let (ldims, labels) = read_idx(&lp, 1)?;
    if idims[0] != ldims[0] {
        return Err(bad(
            &lp,
            format!(
                "{} labels for {} images in {}",
                ldims[0],
                idims[0],
                ip.display()
            ),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l > 9) {
        return Err(bad(&lp, format!("label {l} is not a digit")));
    }
    let dim = idims[1] * idims[2];
    let mut onehot = vec![0.0f32; labels.len() * 10];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * 10 + l as usize] = 1.0;
    }
    Dataset::new()
        .with_stream(IMAGES, dim, pixels.iter().map(|&p| p as f32).collect())?
        .with_stream(LABELS, 10, onehot)
}

/// Loads the training and test splits from a directory.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((load_split(dir, "train")?, load_split(dir, "t10k")?))
}
