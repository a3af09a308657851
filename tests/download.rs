//! Downloads: from a local HTTP server on 127.0.0.1 that serves the shared MNIST files, a
//! corrupt copy (checksum error), a connection dropped half-way (clear error, no partial
//! file) and a dead first mirror (the second one serves).

mod common;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use wgrad::data::download::{fetch_files, sha256_hex};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    Corrupt,
    DropHalfway,
    NotFound,
}

/// Serves the files of `dir` in `mode` on a new port; returns the base URL.
fn serve(dir: &Path, mode: Mode) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let name = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let body = std::fs::read(dir.join(name));
            let (Ok(mut body), false) = (body, mode == Mode::NotFound) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            if mode == Mode::Corrupt {
                let mid = body.len() / 2;
                body[mid] ^= 0x40;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let sent = match mode {
                Mode::DropHalfway => &body[..body.len() / 2],
                _ => &body[..],
            };
            let _ = stream.write_all(sent);
        }
    });
    base
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn downloads_are_checked_and_never_leave_partial_files() {
    let Some(src) = common::mnist_dir() else {
        return;
    };
    let names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];
    let sums: Vec<String> = names
        .iter()
        .map(|n| sha256_hex(&std::fs::read(src.join(n)).unwrap()))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(&sums)
        .map(|(n, s)| (*n, s.as_str()))
        .collect();
    let out = std::env::temp_dir().join(format!("wgrad-download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);

    // A corrupt copy: a checksum error naming the file and the mirror, nothing written.
    let corrupt = serve(&src, Mode::Corrupt);
    let e = fetch_files(&out, &[&corrupt], &files)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("checksum mismatch"),
        "{e}"
    );
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    // A connection dropped half-way: a clear error, no partial file.
    let dropping = serve(&src, Mode::DropHalfway);
    let e = fetch_files(&out, &[&dropping], &files)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&dropping), "{e}");
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    // A first mirror that has nothing, then one that serves: the files arrive and load.
    let missing = serve(&src, Mode::NotFound);
    let good = serve(&src, Mode::Good);
    fetch_files(&out, &[&missing, "http://127.0.0.1:9/", &good], &files).unwrap();
    assert_eq!(listing(&out), {
        let mut n: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        n.sort();
        n
    });
    let (train, test) = wgrad::data::mnist::load(&out).unwrap();
    assert_eq!((train.len(), test.len()), (8000, 2000));
    // Present files with the right checksum are kept: no mirror is needed now.
    fetch_files(&out, &[], &files).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}
