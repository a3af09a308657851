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

/// Text files without a size header (CMUDict) inflate to at most this.
const MAX_INFLATED: u64 = 1 << 30;

/// Reads a whole file, decompressing gzip when it starts with gzip's magic bytes (up to
/// [`MAX_INFLATED`] bytes: a gzip bomb is an error, not an allocation).
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("corrupt gzip data: {e}")))?;
        if out.len() as u64 > MAX_INFLATED {
            return Err(bad(
                path,
                format!("inflates to more than {MAX_INFLATED} bytes"),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: its dimensions and data, after checking the magic
/// number, the number of dimensions and that the data length matches them exactly.
pub fn read_idx(path: &Path, expect_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    parse_idx(&raw, expect_dims).map_err(|m| bad(path, m))
}

/// [`read_idx`] of a file's bytes, raw or gzip-compressed. A compressed file is inflated
/// only as far as its header declares (plus one byte, to tell trailing data), so a small
/// file cannot make the reader allocate more than the dimensions it states; a product of
/// dimensions that overflows is an error.
pub fn parse_idx(
    raw: &[u8],
    expect_dims: usize,
) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    let mut reader: Box<dyn Read + '_> = match raw.starts_with(&[0x1f, 0x8b]) {
        true => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        false => Box::new(raw),
    };
    let mut head = [0u8; 4];
    read_full(&mut reader, &mut head, |got| {
        format!("{got} bytes is too short for an IDX header")
    })?;
    if head[0] != 0 || head[1] != 0 {
        return Err(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x} (not an IDX file)",
            head[0], head[1], head[2], head[3]
        ));
    }
    if head[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} is not unsigned bytes (0x08)",
            head[2]
        ));
    }
    let ndim = head[3] as usize;
    if ndim != expect_dims {
        return Err(format!("{ndim} dimensions, expected {expect_dims}"));
    }
    let mut sizes = vec![0u8; 4 * ndim];
    read_full(&mut reader, &mut sizes, |_| "truncated header".to_string())?;
    let dims: Vec<usize> = sizes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // Every partial product must fit, zeros aside (so that dims[1]·dims[2] of an empty
    // file cannot overflow either).
    let nonzero = dims
        .iter()
        .filter(|&&d| d > 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n < isize::MAX as usize)
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let n = if dims.contains(&0) { 0 } else { nonzero };
    let mut data = Vec::new();
    reader
        .take(n as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("corrupt gzip data: {e}"))?;
    if data.len() != n {
        let have = if data.len() > n {
            "more (trailing data)".to_string()
        } else {
            format!("{} (truncated)", data.len())
        };
        return Err(format!(
            "dimensions {dims:?} need {n} data bytes, the file has {have}"
        ));
    }
    Ok((dims, data))
}

/// Fills `buf` from `r`; a short read is the error `short` makes of the bytes it got.
fn read_full(
    r: &mut dyn Read,
    buf: &mut [u8],
    short: impl Fn(usize) -> String,
) -> std::result::Result<(), String> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Err(short(got)),
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("corrupt gzip data: {e}")),
        }
    }
    Ok(())
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

/// Mirrors of the MNIST files: the one PyTorch uses, then Google's.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// The four MNIST files and their SHA-256.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

/// Downloads the full MNIST (60,000 training and 10,000 test digits) into `dir` unless it
/// is there already, checking each file's SHA-256 ([`super::download::fetch_files`]); then
/// [`load`] reads it.
pub fn download(dir: &Path) -> Result<()> {
    super::download::fetch_files(dir, &MIRRORS, &FILES)
}

/// Loads the training and test splits from a directory.
///
/// # Errors
/// A missing file (naming the names tried and the directory), a corrupt or truncated IDX
/// header or gzip stream, image and label counts that differ, or a label that is not a digit.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((load_split(dir, "train")?, load_split(dir, "t10k")?))
}
