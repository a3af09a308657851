//! Readers and the minibatch source; no GPU needed.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use std::io::Write;
use std::sync::Arc;

use wgrad::data::ctf::{CtfReader, Storage};
use wgrad::data::{mnist, Dataset, MinibatchSource};

fn idx_bytes(magic3: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, magic3];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wgrad-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mnist_reads_the_shared_subset() {
    let Some(dir) = common::mnist_dir() else {
        return;
    };
    let (train, test) = mnist::load(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (8000, 2000));
    assert_eq!(train.dim(mnist::IMAGES), Some(784));
    let px = train.stream(mnist::IMAGES).unwrap();
    assert!(px.iter().all(|&p| (0.0..=255.0).contains(&p)) && px.contains(&255.0));
    let labels = test.stream(mnist::LABELS).unwrap();
    assert!(labels.chunks(10).all(|r| r.iter().sum::<f32>() == 1.0));
    // Every digit occurs.
    let mut seen = [0usize; 10];
    for r in labels.chunks(10) {
        seen[r.iter().position(|&v| v == 1.0).unwrap()] += 1;
    }
    assert!(seen.iter().all(|&c| c > 100), "{seen:?}");
}

#[test]
fn mnist_raw_and_gzip_files_and_errors() {
    let dir = temp_dir("idx");
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(3, &[3, 28, 28], &pixels),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gzip(&idx_bytes(1, &[3], &[7, 0, 9])),
    )
    .unwrap();
    let ds = mnist::load_split(&dir, "train").unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.stream(mnist::IMAGES).unwrap()[300], 44.0);
    assert_eq!(ds.stream(mnist::LABELS).unwrap()[7], 1.0);
    assert_eq!(ds.stream(mnist::LABELS).unwrap()[29], 1.0);

    // Truncated data, bad magic, wrong label count, a missing file.
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(3, &[3, 28, 28], &pixels[..2000]),
    )
    .unwrap();
    let e = mnist::load_split(&dir, "train").unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(dir.join("train-images-idx3-ubyte"), b"PK\x03\x04garbage").unwrap();
    let e = mnist::load_split(&dir, "train").unwrap_err().to_string();
    assert!(e.contains("magic"), "{e}");
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(3, &[2, 28, 28], &pixels[..2 * 784]),
    )
    .unwrap();
    let e = mnist::load_split(&dir, "train").unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        b"\x1f\x8b\x08\x00broken",
    )
    .unwrap();
    let e = mnist::load_split(&dir, "train").unwrap_err().to_string();
    assert!(e.contains("corrupt gzip"), "{e}");
    let e = mnist::load_split(&dir, "t10k").unwrap_err().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn reader() -> CtfReader {
    CtfReader::new(&[
        ("features", 3, Storage::Dense),
        ("labels", 4, Storage::Sparse),
    ])
}

#[test]
fn ctf_dense_sparse_comments_and_ids() {
    let text = "|features 1 2 3 |labels 2:1\r\n\
                |# a whole-line comment\n\
                |labels 0:0.5 3:1 |features -1e-3 4.5 6 |# trailing comment\n\
                \n\
                |features 0 0 1 |other 9 9\n";
    let (ds, rep) = reader().read_str(text).unwrap();
    assert!(rep.skipped.is_empty());
    assert_eq!(ds.len(), 3);
    assert_eq!(
        ds.stream("features").unwrap(),
        &[1.0, 2.0, 3.0, -1e-3, 4.5, 6.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        ds.stream("labels").unwrap(),
        &[0.0, 0.0, 1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    );
    let (ds, _) = reader()
        .read_str("1 |features 1 2 3\n2\t|features 4 5 6\n")
        .unwrap();
    assert_eq!(ds.len(), 2);
}

#[test]
fn ctf_errors_name_the_line_and_max_errors_skips() {
    let cases = [
        ("|features 1 2\n", "line 1", "2 values, expected 3"),
        (
            "|features 1 2 3\n|features 1 x 3\n",
            "line 2",
            "not a number",
        ),
        ("|features 1 2 3 |labels 4:1\n", "line 1", "index 4"),
        ("|features 1 2 3 |features 1 2 3\n", "line 1", "twice"),
        ("|labels 1:1\n", "line 1", "features is missing"),
        (
            "5 |features 1 2 3\n5 |features 1 2 3\n",
            "line 2",
            "sequences",
        ),
        ("|features 1 2 3 |labels 1\n", "line 1", "index:value"),
        ("just text\n", "line 1", "no |field"),
    ];
    for (text, line, what) in cases {
        let e = reader().read_str(text).unwrap_err().to_string();
        assert!(e.contains(line) && e.contains(what), "{text:?}: {e}");
    }
    let text = "|features 1 2 3\n|features 1 2\n|features 4 5 6\n|features x\n";
    let (ds, rep) = reader().max_errors(2).read_str(text).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(
        rep.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![2, 4]
    );
    let e = reader()
        .max_errors(1)
        .read_str(text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 4") && e.contains("more than 1"), "{e}");
}

#[test]
fn minibatch_source_shuffles_per_epoch_and_keeps_the_last_partial_batch() {
    let n = 103;
    let ds = Arc::new(
        Dataset::new()
            .with_stream("x", 2, (0..n * 2).map(|i| i as f32).collect())
            .unwrap()
            .with_stream("y", 1, (0..n).map(|i| i as f32).collect())
            .unwrap(),
    );
    let epoch = |e| MinibatchSource::epoch(ds.clone(), 25, Some(7), e, 2).collect::<Vec<_>>();
    let e0 = epoch(0);
    assert_eq!(
        e0.iter().map(|m| m.len).collect::<Vec<_>>(),
        vec![25, 25, 25, 25, 3]
    );
    let mut ids: Vec<f32> = e0.iter().flat_map(|m| m.streams[1].clone()).collect();
    assert_ne!(
        ids,
        (0..n).map(|i| i as f32).collect::<Vec<_>>(),
        "shuffled"
    );
    for m in &e0 {
        for (k, y) in m.streams[1].iter().enumerate() {
            assert_eq!(m.streams[0][2 * k], 2.0 * y, "streams stay aligned");
        }
    }
    ids.sort_by(f32::total_cmp);
    assert_eq!(
        ids,
        (0..n).map(|i| i as f32).collect::<Vec<_>>(),
        "each sample once per epoch"
    );
    assert_eq!(epoch(0), e0, "the same seed and epoch give the same order");
    assert_ne!(epoch(1), e0, "another epoch, another order");
    let ordered: Vec<_> = MinibatchSource::epoch(ds.clone(), 50, None, 0, 1).collect();
    assert_eq!(ordered[0].streams[1][..3], [0.0, 1.0, 2.0]);
    // Dropping a source early stops its thread.
    let mut s = MinibatchSource::epoch(ds, 1, Some(1), 0, 1);
    s.next();
    drop(s);
}
