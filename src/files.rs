//! Writing files atomically: through a temporary file in the same directory, synced, then
//! renamed over the target and the directory synced, so a crash never leaves a half-written
//! file behind, and an error leaves no temporary file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A temporary name beside `path`, unique to this process and call: two outputs (even
/// `a.csv` and `a.png`, or two threads writing one file) never share one.
fn temp_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let k = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{k}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename;
/// the file and then its directory are synced. On error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    sync_dir(path)
}

/// Syncs the directory holding `path`, so that a rename into it survives a power loss
/// (a no-op where directories cannot be opened, as on Windows).
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if cfg!(unix) {
        let d = std::fs::File::open(dir).map_err(|e| io(dir, e))?;
        d.sync_all().map_err(|e| io(dir, e))?;
    }
    Ok(())
}
