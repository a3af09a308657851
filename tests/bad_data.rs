//! Bad data and bad requests are errors that name the culprit: empty datasets, batch 0,
//! indices out of range, undeclared CTF streams, non-finite values in files, IDX sizes that
//! overflow or lie, and atomic writes that leave nothing behind.

mod common;
use std::io::Write;

use wgrad::data::ctf::{CtfReader, Storage};
use wgrad::data::{mnist, Dataset, MinibatchSource};
use wgrad::{FitOptions, Graph, Learner, Trainer};

fn small() -> Dataset {
    Dataset::new()
        .with_stream("x", 2, vec![0.5, 1.0, -1.0, 2.0, 0.0, 1.0])
        .unwrap()
        .with_stream("y", 1, vec![1.0, 0.0, 1.0])
        .unwrap()
}

#[test]
fn empty_datasets_batch_zero_and_bad_slices_are_errors() {
    let ctx = common::ctx();
    let g = Graph::new();
    let x = g.input("x", &[2]).unwrap();
    let y = g.input("y", &[1]).unwrap();
    let w = g.parameter("w", &[2, 1], wgrad::Init::Zeros).unwrap();
    let d = g.sub(g.matmul(x, w).unwrap(), y).unwrap();
    let loss = g.reduce_sum(g.mul(d, d).unwrap(), &[1]).unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, None, Learner::sgd(0.1)).unwrap();
    let inputs = [("x", x), ("y", y)];
    let quiet = |batch| FitOptions {
        epochs: 1,
        batch,
        progress: false,
        print_epochs: false,
        ..FitOptions::default()
    };
    let empty = small().slice(0..0).unwrap();
    let e = t.fit(&empty, None, &inputs, &quiet(2)).unwrap_err();
    assert!(e.to_string().contains("fit: the dataset is empty"), "{e}");
    let e = t.fit(&small(), None, &inputs, &quiet(0)).unwrap_err();
    assert!(e.to_string().contains("batch size is 0"), "{e}");
    let e = t.evaluate(&empty, &inputs, 4).unwrap_err();
    assert!(
        e.to_string().contains("evaluate: the dataset is empty"),
        "{e}"
    );
    let e = t
        .fit(&small(), Some(&empty), &inputs, &quiet(2))
        .unwrap_err();
    assert!(e.to_string().contains("evaluation set"), "{e}");
    assert!(MinibatchSource::epoch(small().into(), 0, None, 0, 1).is_err());
    let e = small().slice(1..5).unwrap_err().to_string();
    assert!(e.contains("1..5") && e.contains("3 samples"), "{e}");
    assert!(small().gather(&[0, 3]).is_err());
    // A step left in flight by the caller does not break fit.
    let (xs, ys) = (vec![1.0, 2.0], vec![0.5]);
    t.train_minibatch_pipelined(&[(x, &xs), (y, &ys)]).unwrap();
    let rec = t.fit(&small(), None, &inputs, &quiet(2)).unwrap();
    assert!(rec[0].train_loss.is_finite());
}

#[test]
fn indices_out_of_range_are_errors_not_zero_rows() {
    let ctx = common::ctx();
    let g = Graph::new();
    let idx = g.input("label", &[]).unwrap();
    let hot = g.one_hot(idx, 4).unwrap();
    let table = g.parameter("table", &[5, 3], wgrad::Init::Zeros).unwrap();
    let tok = g.input("token", &[]).unwrap();
    let emb = g.embedding(tok, table).unwrap();
    let mut ex = wgrad::Executor::new(&ctx, &g).unwrap();
    assert!(ex.eval(&[hot], &[(idx, &[0.0, 3.0])]).is_ok());
    for bad in [4.0, -1.0, 1.5, f32::NAN] {
        let e = ex
            .eval(&[hot], &[(idx, &[0.0, bad])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'label' value 1") && e.contains("one_hot") && e.contains("0 to 3"),
            "{e}"
        );
    }
    let e = ex.eval(&[emb], &[(tok, &[5.0])]).unwrap_err().to_string();
    assert!(e.contains("embedding") && e.contains("0 to 4"), "{e}");
}

#[test]
fn ctf_rejects_undeclared_streams_and_non_finite_values() {
    let reader = CtfReader::new(&[
        ("features", 2, Storage::Dense),
        ("labels", 3, Storage::Sparse),
    ]);
    // A misspelt label stream would read as all-zero labels.
    let e = reader
        .read_str("|features 1 2 |label 1:1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 1") && e.contains("stream label is not one of"),
        "{e}"
    );
    let (d, _) = reader
        .clone()
        .ignore_streams(&["label"])
        .read_str("|features 1 2 |label 1:1\n")
        .unwrap();
    assert_eq!(d.len(), 1);
    for bad in ["nan", "inf", "-inf", "1e39"] {
        let text = format!("|features 1 {bad} |labels 0:1\n");
        let e = reader.read_str(&text).unwrap_err().to_string();
        assert!(e.contains("not a finite number"), "{bad}: {e}");
        let text = format!("|features 1 2 |labels 2:{bad}\n");
        assert!(reader.read_str(&text).is_err(), "{bad} in a sparse stream");
    }
}

/// An IDX header for unsigned bytes with these dimensions.
fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_sizes_are_checked_and_gzip_is_inflated_only_as_declared() {
    let mut ok = idx_header(&[2, 2, 2]);
    ok.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(mnist::parse_idx(&ok, 3).unwrap().0, vec![2, 2, 2]);
    assert_eq!(mnist::parse_idx(&gzip(&ok), 3).unwrap().1.len(), 8);
    // Dimensions whose product overflows, even after a zero (the per-sample size would).
    for dims in [[u32::MAX, u32::MAX, u32::MAX], [0, u32::MAX, u32::MAX]] {
        let e = mnist::parse_idx(&idx_header(&dims), 3).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
    }
    // A header that declares 1 MB, in front of a gzip bomb of 64 MB of zeros: the reader
    // stops one byte after what the header declares.
    let mut bomb = idx_header(&[1, 1000, 1000]);
    bomb.extend(std::iter::repeat_n(0u8, 64 << 20));
    let e = mnist::parse_idx(&gzip(&bomb), 3).unwrap_err();
    assert!(e.contains("trailing data"), "{e}");
    let mut short = idx_header(&[1, 2, 2]);
    short.extend_from_slice(&[1, 2]);
    assert!(mnist::parse_idx(&gzip(&short), 3)
        .unwrap_err()
        .contains("truncated"));
}

#[test]
fn atomic_writes_leave_no_temporary_files_and_never_collide() {
    let dir = std::env::temp_dir().join(format!("wgrad-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two outputs with one stem, written from two threads at once, many times.
    std::thread::scope(|s| {
        for ext in ["csv", "png"] {
            let dir = &dir;
            s.spawn(move || {
                for k in 0..50 {
                    let body = format!("{ext} {k}");
                    wgrad::files::write_atomic(&dir.join(format!("run.{ext}")), body.as_bytes())
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(
        std::fs::read_to_string(dir.join("run.csv")).unwrap(),
        "csv 49"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("run.png")).unwrap(),
        "png 49"
    );
    // A failed write (into a directory that is not there) leaves nothing behind.
    let missing = dir.join("no-such-dir").join("x.bin");
    assert!(wgrad::files::write_atomic(&missing, b"x").is_err());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn node_ids_from_another_graph_are_errors_not_other_nodes() {
    let ctx = common::ctx();
    let big = Graph::new();
    let a = big.input("a", &[2]).unwrap();
    let mut last = a;
    for _ in 0..10 {
        last = big.relu(last).unwrap();
    }
    let small = Graph::new();
    let x = small.input("x", &[2]).unwrap();
    let loss = small.reduce_sum(x, &[]).unwrap();
    // `a` has the index of `x`: still not this graph's node.
    assert_eq!(a.index(), x.index());
    for id in [last, a] {
        let e = small.relu(id).unwrap_err().to_string();
        assert!(e.contains("belongs to another graph"), "{e}");
        assert!(small.grad(id, &[x]).is_err());
        assert!(small.grad(loss, &[id]).is_err());
        assert!(Trainer::new(&ctx, &small, id, None, Learner::sgd(0.1)).is_err());
        assert_eq!(small.name(id), None);
    }
    let mut ex = wgrad::Executor::new(&ctx, &small).unwrap();
    for id in [last, a] {
        let e = ex.eval(&[id], &[(x, &[1.0, 2.0])]).unwrap_err().to_string();
        assert!(e.contains("belongs to another graph"), "{e}");
        let e = ex
            .eval(&[loss], &[(id, &[1.0, 2.0])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("belongs to another graph"), "{e}");
        assert!(ex.parameter(id).is_err());
    }
}

#[test]
fn sizes_that_overflow_are_errors_and_empty_axes_are_rejected_at_creation() {
    let g = Graph::new();
    let e = g.input("a", &[1 << 40, 1 << 40]).unwrap_err().to_string();
    assert!(e.contains("2^32 or more"), "{e}");
    let e = g
        .parameter("p", &[usize::MAX, 3], wgrad::Init::Zeros)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2^32 or more"), "{e}");
    assert!(g
        .input("z", &[0])
        .unwrap_err()
        .to_string()
        .contains("empty axis"));
    assert!(g
        .parameter("q", &[0, 3], wgrad::Init::Zeros)
        .unwrap_err()
        .to_string()
        .contains("empty axis"));
    // A feed with no samples is an error too.
    let ctx = common::ctx();
    let x = g.input("x", &[3]).unwrap();
    let y = g.relu(x).unwrap();
    let mut ex = wgrad::Executor::new(&ctx, &g).unwrap();
    let e = ex.eval(&[y], &[(x, &[])]).unwrap_err().to_string();
    assert!(e.contains("non-zero multiple"), "{e}");
}
