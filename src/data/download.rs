//! Downloading dataset files: each file is fetched from the first mirror that serves it with
//! the expected SHA-256, held in memory (up to a size cap) and written atomically, so a
//! dropped connection or a corrupt copy never leaves a file behind. Files already present
//! with the right checksum are kept.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::files::write_atomic;
use crate::{Error, Result};

/// No downloaded file may be larger than this.
#[cfg(all(feature = "download", not(target_arch = "wasm32")))]
const MAX_BYTES: u64 = 1 << 30;

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes sure `dir` holds each `(file name, SHA-256)` of `files`: present files with the
/// right checksum are kept, others are fetched from `mirrors` (base URLs ending in `/`, tried
/// in order). The error of a file no mirror could give names every mirror's failure.
pub fn fetch_files(dir: &Path, mirrors: &[&str], files: &[(&str, &str)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    for &(name, sha) in files {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == sha) {
            continue;
        }
        let mut failures = Vec::new();
        let mut got = None;
        for mirror in mirrors {
            let url = format!("{mirror}{name}");
            match fetch(&url).and_then(|b| check(&url, b, sha)) {
                Ok(bytes) => {
                    got = Some(bytes);
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
        let Some(bytes) = got else {
            return Err(Error::Invalid(format!(
                "download of {name} failed: {}",
                failures.join("; ")
            )));
        };
        write_atomic(&path, &bytes)?;
    }
    Ok(())
}

/// The HTTP agent: rustls inside ureq, or the system's TLS on Apple and Windows targets.
#[cfg(all(feature = "download", not(target_arch = "wasm32")))]
fn agent() -> std::result::Result<ureq::Agent, String> {
    #[cfg(any(target_vendor = "apple", windows))]
    {
        let tls = native_tls::TlsConnector::new().map_err(|e| format!("system TLS: {e}"))?;
        Ok(ureq::AgentBuilder::new()
            .tls_connector(std::sync::Arc::new(tls))
            .build())
    }
    #[cfg(not(any(target_vendor = "apple", windows)))]
    Ok(ureq::AgentBuilder::new().build())
}

/// The bytes at `url`, or why not.
#[cfg(all(feature = "download", not(target_arch = "wasm32")))]
fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let resp = agent()?
        .get(url)
        .timeout(std::time::Duration::from_secs(300))
        .call()
        .map_err(|e| e.to_string())?;
    let declared: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > MAX_BYTES) {
        return Err(format!(
            "{url}: {} bytes is over the cap",
            declared.unwrap_or(0)
        ));
    }
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            format!(
                "{url}: the connection failed after {} bytes: {e}",
                body.len()
            )
        })?;
    if body.len() as u64 > MAX_BYTES {
        return Err(format!("{url}: more than {MAX_BYTES} bytes"));
    }
    if let Some(n) = declared.filter(|&n| n != body.len() as u64) {
        return Err(format!("{url}: {} of {n} bytes arrived", body.len()));
    }
    Ok(body)
}

/// Without the `download` feature, and on wasm32, there is no HTTP client.
#[cfg(not(all(feature = "download", not(target_arch = "wasm32"))))]
fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    Err(format!(
        "{url}: this build of wgrad has no HTTP client (the `download` feature is off, or the target is wasm32)"
    ))
}

/// `bytes` when their SHA-256 is `sha`.
fn check(url: &str, bytes: Vec<u8>, sha: &str) -> std::result::Result<Vec<u8>, String> {
    let got = sha256_hex(&bytes);
    match got == sha {
        true => Ok(bytes),
        false => Err(format!(
            "{url}: checksum mismatch (SHA-256 {got}, expected {sha})"
        )),
    }
}
