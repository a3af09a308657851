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
    // `other` is not declared: an error unless skipped by name.
    let e = reader().read_str(text).unwrap_err().to_string();
    assert!(e.contains("line 5") && e.contains("stream other"), "{e}");
    let (ds, rep) = reader().ignore_streams(&["other"]).read_str(text).unwrap();
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
    let epoch = |e| {
        MinibatchSource::epoch(ds.clone(), 25, Some(7), e, 2)
            .unwrap()
            .collect::<Vec<_>>()
    };
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
    let ordered: Vec<_> = MinibatchSource::epoch(ds.clone(), 50, None, 0, 1)
        .unwrap()
        .collect();
    assert_eq!(ordered[0].streams[1][..3], [0.0, 1.0, 2.0]);
    // Dropping a source early stops its thread.
    let mut s = MinibatchSource::epoch(ds, 1, Some(1), 0, 1).unwrap();
    s.next();
    drop(s);
}

/// The shared CMU dictionary: `$WGRAD_CMUDICT`, default `../shared/data/cmudict/cmudict.dict.gz`.
/// Missing: a failure when `CI=true`, otherwise a loud skip.
fn cmudict_path() -> Option<std::path::PathBuf> {
    let path = std::env::var("WGRAD_CMUDICT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/data/cmudict/cmudict.dict.gz")
        });
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CMUDict not found at {} (set WGRAD_CMUDICT); CI must run this test",
            path.display()
        );
    }
    eprintln!(
        "\n*** SKIPPED: CMUDict not found at {} (set WGRAD_CMUDICT) ***\n",
        path.display()
    );
    None
}

#[test]
fn cmudict_preparation_follows_the_task() {
    use wgrad::data::cmudict::{parse, symbols, LETTERS};
    let mut text = String::from(
        "zebra Z IY1 B R AH0\n\
         read R EH1 D\n\
         read(2) R IY1 D\n\
         aalborg AO1 L B AO0 R G # place, danish\n\
         a.m. EY2 EH1 M\n\
         r2d2 AA1 R T UW1 D IY1 T UW1\n\
         'bout B AW1 T\n\
         \n\
         abcdefghijklmnopq EY1\n\
         abcdefghijklmnop EY1\n",
    );
    for k in 0..20 {
        text.push_str(&format!("w{} W\n", (b'a' + k) as char));
    }
    let d = parse(&text, "hand-made").unwrap();
    let all: Vec<&str> = d
        .test
        .iter()
        .chain(&d.train)
        .map(|p| p.word.as_str())
        .collect();
    assert_eq!(all.len(), 25, "{all:?}");
    for dropped in ["read(2)", "a.m.", "r2d2", "abcdefghijklmnopq"] {
        assert!(!all.contains(&dropped), "{dropped} kept");
    }
    // Sorted; the 1st and the 21st go to the test split.
    let test: Vec<&str> = d.test.iter().map(|p| p.word.as_str()).collect();
    assert_eq!(test, ["'bout", "wq"]);
    assert_eq!(d.train[0].word, "aalborg");
    let zebra = d.train.iter().find(|p| p.word == "zebra").unwrap();
    assert_eq!(zebra.phoneme_string(), "Z IY B R AH");
    let read = d.train.iter().find(|p| p.word == "read").unwrap();
    assert_eq!(symbols(&read.phonemes), "R EH D");
    let spelled: String = zebra
        .letters
        .iter()
        .map(|&l| LETTERS.as_bytes()[l as usize] as char)
        .collect();
    assert_eq!(spelled, "zebra");

    for (bad, want) in [
        ("zebra Z IY1 B R AX0\n", "line 1: phoneme 5"),
        (
            "x K S\nzebra\n",
            "line 2: the word \"zebra\" has no phonemes",
        ),
        ("zebra Z\nzebra Z\n", "listed twice"),
        ("zebra Z\n", "too few"),
    ] {
        let e = parse(bad, "bad.dict").unwrap_err().to_string();
        assert!(e.contains("bad.dict") && e.contains(want), "{e}");
    }
}

#[test]
fn the_full_cmudict_loads() {
    let Some(path) = cmudict_path() else {
        return;
    };
    let d = wgrad::data::cmudict::load(&path).unwrap();
    let n = d.train.len() + d.test.len();
    // 135,166 lines, of which about 8,000 alternates and some words with other characters.
    assert!((110_000..135_000).contains(&n), "{n} words");
    assert_eq!(d.test.len(), n.div_ceil(20));
    assert!(d.train.iter().chain(&d.test).all(|p| p.letters.len() <= 16));
    let e = wgrad::data::cmudict::load(std::path::Path::new("/no/such.dict.gz"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such.dict.gz"), "{e}");
}

#[test]
fn edit_distances_and_error_rates_on_hand_made_cases() {
    use wgrad::edit_distance::{edit_distance, error_rates};
    let d = |a: &str, b: &str| edit_distance(a.as_bytes(), b.as_bytes());
    assert_eq!(d("kitten", "sitting"), 3);
    assert_eq!(d("", "abc"), 3);
    assert_eq!(d("abc", ""), 3);
    assert_eq!(d("abc", "abc"), 0);
    assert_eq!(d("ab", "ba"), 2);
    assert_eq!(d("flaw", "lawn"), 2);
    // Phonemes: one substitution in 5, one deletion in 3, one exact word.
    let zebra: &[u8] = &[37, 17, 6, 27, 2];
    let zebra_bad: &[u8] = &[37, 16, 6, 27, 2];
    let read: &[u8] = &[27, 10, 8];
    let red: &[u8] = &[27, 10];
    let r = error_rates(&[(zebra_bad, zebra), (red, read), (zebra, zebra)]);
    assert!((r.token - 2.0 / 13.0).abs() < 1e-12, "{r:?}");
    assert!((r.sequence - 2.0 / 3.0).abs() < 1e-12, "{r:?}");
    assert_eq!(error_rates::<u8>(&[]).token, 0.0);
}

#[test]
fn ctf_sequences_read_streams_of_different_lengths_and_round_trip() {
    use wgrad::data::ctf_sequences::{sequences_to_string, write_sequences};
    let r = CtfReader::new(&[
        ("letters", 5, Storage::Sparse),
        ("x", 2, Storage::Dense),
        ("phonemes", 4, Storage::Sparse),
    ])
    .ignore_streams(&["other"]);
    let text = "w1 |letters 3:1 |x 0.5 -1 |phonemes 2:1 |# first step\n\
                w1 |letters 0:1 |phonemes 3:1\r\n\
                w1 |letters 4:2.5 |other 7\n\
                \n\
                |letters 1:1 |x 1 2\n\
                w2 |phonemes 0:1 |x 3 4\n";
    let (s, report) = r.read_sequences_str(text).unwrap();
    assert!(report.skipped.is_empty());
    assert_eq!(s.sequences.len(), 3);
    let (l, x, p) = (
        s.stream("letters").unwrap(),
        s.stream("x").unwrap(),
        s.stream("phonemes").unwrap(),
    );
    assert_eq!([s.steps(0, l), s.steps(0, x), s.steps(0, p)], [3, 1, 2]);
    assert_eq!(s.sequences[0].id, "w1");
    assert_eq!(
        &s.sequences[0].streams[l][10..15],
        &[0.0, 0.0, 0.0, 0.0, 2.5]
    );
    assert_eq!(s.sequences[0].streams[x], vec![0.5, -1.0]);
    assert_eq!([s.steps(1, l), s.steps(1, x), s.steps(1, p)], [1, 1, 0]);
    assert_eq!([s.steps(2, l), s.steps(2, x), s.steps(2, p)], [0, 1, 1]);

    // What the writer writes reads back equal, through a file.
    let dir = std::env::temp_dir().join(format!("wgrad-ctf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seqs.ctf");
    write_sequences(&path, &s.specs, &s.sequences).unwrap();
    let (back, _) = r.read_sequences_file(&path).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        sequences_to_string(&s.specs, &s.sequences).unwrap(),
        std::fs::read_to_string(&path).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    for (bad, want) in [
        (
            "a |letters 3:1\na |letters 9:1\n",
            "CTF line 2: column 12: stream letters: index 9",
        ),
        (
            "a |x 1 2 3\n",
            "CTF line 1: column 10: stream x: more than 2",
        ),
        (
            "a |x 1\n",
            "CTF line 1: column 4: stream x: 1 values, expected 2",
        ),
        (
            "a |letters 1:1\nb |letters 1:1\na |letters 2:1\n",
            "CTF line 3: sequence id a comes back",
        ),
        ("a letters 1:1\n", "CTF line 1: no |field"),
    ] {
        let e = r.read_sequences_str(bad).unwrap_err().to_string();
        assert!(e.contains(want), "{bad:?}: {e}");
    }
    let (s, report) = r
        .clone()
        .max_errors(1)
        .read_sequences_str("a |letters 1:1\na |letters x\nb |x 1 2\n")
        .unwrap();
    assert_eq!(
        (s.sequences.len(), report.skipped.len(), report.skipped[0].0),
        (2, 1, 2)
    );
    let e = r
        .read_sequences_file(std::path::Path::new("/no/such.ctf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such.ctf"), "{e}");
}

#[test]
fn sequence_source_counts_tokens_buckets_and_shuffles() {
    use rand::{Rng, SeedableRng};
    use wgrad::data::ctf::StreamSpec;
    use wgrad::data::ctf_sequences::{CtfSequence, CtfSequences};
    use wgrad::data::{SequenceBatching, SequenceSource};
    let mut r = rand::rngs::StdRng::seed_from_u64(5);
    let specs = vec![
        StreamSpec {
            name: "a".into(),
            dim: 2,
            storage: Storage::Dense,
        },
        StreamSpec {
            name: "b".into(),
            dim: 1,
            storage: Storage::Dense,
        },
    ];
    let sequences: Vec<CtfSequence> = (0..40)
        .map(|k| {
            let (la, lb) = (r.random_range(1..10usize), r.random_range(1..6usize));
            CtfSequence {
                id: k.to_string(),
                streams: vec![
                    (0..2 * la).map(|i| (k * 100 + i) as f32).collect(),
                    (0..lb).map(|i| -((k * 100 + i) as f32)).collect(),
                ],
            }
        })
        .collect();
    let data = Arc::new(CtfSequences { specs, sequences });
    let tokens = |k: usize| data.steps(k, 0).max(data.steps(k, 1));
    let how = SequenceBatching {
        tokens: 20,
        bucket: false,
        pad_multiple: 4,
    };
    let orders = |how: SequenceBatching, seed: Option<u64>, epoch: u64| -> Vec<Vec<usize>> {
        SequenceSource::epoch(data.clone(), how, seed, epoch, 2)
            .unwrap()
            .map(|mb| {
                let mb = mb.unwrap();
                let total: usize = mb.indices.iter().map(|&k| tokens(k)).sum();
                assert_eq!(mb.tokens, total);
                assert!(total <= 20 || mb.indices.len() == 1, "{total} tokens");
                for (s, b) in mb.streams.iter().enumerate() {
                    let longest = mb.indices.iter().map(|&k| data.steps(k, s)).max().unwrap();
                    assert!(b.steps() % 4 == 0 && b.steps() >= longest && b.steps() < longest + 4);
                    let got = b.unpack(b.values()).unwrap();
                    for (g, &k) in got.iter().zip(&mb.indices) {
                        assert_eq!(g, &data.sequences[k].streams[s]);
                    }
                }
                mb.indices
            })
            .collect()
    };
    let e0 = orders(how, Some(1), 0);
    let mut all: Vec<usize> = e0.iter().flatten().copied().collect();
    all.sort();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    assert_eq!(orders(how, Some(1), 0), e0);
    assert_ne!(orders(how, Some(1), 1), e0);
    assert_eq!(orders(how, None, 0).concat(), (0..40).collect::<Vec<_>>());
    // Bucketed: the minibatches' length ranges do not overlap.
    let bucketed = orders(
        SequenceBatching {
            bucket: true,
            ..how
        },
        Some(1),
        0,
    );
    let ranges: Vec<(usize, usize)> = bucketed
        .iter()
        .map(|b| {
            let l: Vec<usize> = b.iter().map(|&k| tokens(k)).collect();
            (*l.iter().min().unwrap(), *l.iter().max().unwrap())
        })
        .collect();
    for a in &ranges {
        for b in &ranges {
            assert!(
                a == b || a.1 <= b.0 || b.1 <= a.0,
                "{a:?} and {b:?} overlap"
            );
        }
    }
    assert!(SequenceSource::epoch(
        data.clone(),
        SequenceBatching { tokens: 0, ..how },
        None,
        0,
        1
    )
    .is_err());
    let mut holes = (*data).clone();
    holes.sequences[3].streams[1].clear();
    let errors: Vec<String> = SequenceSource::epoch(Arc::new(holes), how, None, 0, 1)
        .unwrap()
        .filter_map(|mb| mb.err().map(|e| e.to_string()))
        .collect();
    assert!(
        errors.len() == 1 && errors[0].contains("sequence 3") && errors[0].contains("stream b"),
        "{errors:?}"
    );
}
