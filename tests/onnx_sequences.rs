//! ONNX export and import of sequence models, checked by onnxruntime.
//!
//! Export: a bidirectional LSTM, a reverse GRU and an RNN over sequences of lengths
//! [1, 7, 3] (padding filled with junk) export to the file
//! `tests/fixtures/onnx/recurrent.onnx`, which onnxruntime ran
//! (`tests/fixtures/onnx/run_recurrent.py`, its outputs in `recurrent.txt`). The test checks
//! that today's export is that file byte for byte and that wgrad's outputs are
//! onnxruntime's. After a deliberate change to the exporter, rerun with
//! `WGRAD_WRITE_FIXTURES=1` (it writes the file and the inputs) and then the script.
//!
//! Import: that export imported again gives wgrad's own outputs; models made by onnx.helper
//! as PyTorch lays them out (a time-major bidirectional LSTM into a Linear, a batch-major
//! GRU and RNN with lengths and an expanded initial state) give onnxruntime's outputs
//! (`make_recurrent_fixtures.py`) and fine-tune.

mod common;

use std::path::{Path, PathBuf};

use wgrad::onnx::{self, Model};
use wgrad::{Executor, Graph, Learner, NodeId, Trainer};

/// Seeded values in [-scale, scale) (a small LCG, so the file does not depend on `rand`).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn param(g: &Graph, name: &str, dims: &[usize], seed: u64) -> NodeId {
    let n = dims.iter().product();
    g.parameter_from(name, dims, &values(seed, n, 0.6)).unwrap()
}

struct Outputs {
    scores: NodeId,
    gru: NodeId,
    first: NodeId,
}

/// x [3] → Bidirectional LSTM (5 + 5, learned h0 forwards, forget bias 1) → reverse GRU (4)
/// → RNN (3) → last → Dense (2); also the GRU's states and the LSTMs' first step.
fn model(g: &Graph, x: NodeId) -> Outputs {
    let zero = g.scalar(0.0);
    let h0 = param(g, "fwd.h0", &[5], 1);
    let (fwd, _) = g
        .lstm(
            x,
            param(g, "fwd.W", &[3, 20], 2),
            param(g, "fwd.U", &[5, 20], 3),
            param(g, "fwd.b", &[20], 4),
            h0,
            zero,
            false,
            1.0,
        )
        .unwrap();
    let (bwd, _) = g
        .lstm(
            x,
            param(g, "bwd.W", &[3, 20], 5),
            param(g, "bwd.U", &[5, 20], 6),
            param(g, "bwd.b", &[20], 7),
            zero,
            zero,
            true,
            0.0,
        )
        .unwrap();
    let both = g.concat(fwd, bwd, -1).unwrap();
    let gru = g
        .gru(
            both,
            param(g, "gru.W", &[10, 12], 8),
            param(g, "gru.U", &[4, 12], 9),
            param(g, "gru.b", &[12], 10),
            zero,
            true,
        )
        .unwrap();
    let rnn = g
        .rnn(
            gru,
            param(g, "rnn.W", &[4, 3], 11),
            param(g, "rnn.U", &[3, 3], 12),
            param(g, "rnn.b", &[3], 13),
            zero,
            false,
        )
        .unwrap();
    let last = g.sequence_last(rnn).unwrap();
    let dense = g.matmul(last, param(g, "dense.W", &[3, 2], 14)).unwrap();
    let scores = g.add(dense, param(g, "dense.b", &[2], 15)).unwrap();
    let first = g.sequence_first(both).unwrap();
    Outputs { scores, gru, first }
}

/// The fixtures' folder.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn array_text(name: &str, dims: &[usize], v: &[f32]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let vals: Vec<String> = v.iter().map(|x| format!("{x:e}")).collect();
    format!("{name} {}\n{}\n", dims.join(" "), vals.join(" "))
}

/// The model of [`model`] over three sequences of lengths [1, 7, 3], padded with junk.
struct Case {
    g: Graph,
    x: NodeId,
    out: Outputs,
    padded: Vec<f32>,
    lens: Vec<f32>,
}

impl Case {
    fn new() -> Case {
        let g = Graph::new();
        let x = g.input_sequence("x", &[3]).unwrap();
        let out = model(&g, x);
        let lengths = [1usize, 7, 3];
        // Padded to 7 steps with junk: no runtime may read it.
        let mut padded = vec![9.0f32; 3 * 7 * 3];
        for (b, &l) in lengths.iter().enumerate() {
            let s = values(100 + b as u64, 3 * l, 1.5);
            padded[b * 7 * 3..b * 7 * 3 + s.len()].copy_from_slice(&s);
        }
        let lens = lengths.iter().map(|&l| l as f32).collect();
        Case {
            g,
            x,
            out,
            padded,
            lens,
        }
    }

    fn outputs(&self) -> [(&'static str, NodeId); 3] {
        [
            ("scores", self.out.scores),
            ("gru_states", self.out.gru),
            ("first", self.out.first),
        ]
    }
}

/// The largest difference between `got` and `want`; any non-finite value fails.
fn max_diff(name: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(want.len(), got.len(), "{name}: length");
    let mut d = 0.0f32;
    for (i, (a, b)) in want.iter().zip(got).enumerate() {
        assert!(b.is_finite(), "{name}[{i}]: got {b}, want {a}");
        d = d.max((a - b).abs());
    }
    d
}

/// `[a, b, rest]` with its first two axes swapped.
fn swap01(v: &[f32], a: usize, b: usize) -> Vec<f32> {
    let rest = v.len() / (a * b);
    let mut out = vec![0.0; v.len()];
    for i in 0..a {
        for j in 0..b {
            let (from, to) = ((i * b + j) * rest, (j * a + i) * rest);
            out[to..to + rest].copy_from_slice(&v[from..from + rest]);
        }
    }
    out
}

#[test]
fn recurrent_models_export_and_match_onnxruntime() {
    let ctx = common::ctx();
    let Case {
        g,
        x,
        out,
        padded,
        lens,
    } = Case::new();
    let mut exec = Executor::new(&ctx, &g).unwrap();
    let outputs = [
        ("scores", out.scores),
        ("gru_states", out.gru),
        ("first", out.first),
    ];
    let bytes = onnx::export(&g, &exec, &outputs).unwrap();
    let feed = [(x, &padded[..]), (g.sequence_lengths(), &lens[..])];
    let got = exec.eval(&[out.scores, out.gru, out.first], &feed).unwrap();
    let dir = fixtures();
    if std::env::var("WGRAD_WRITE_FIXTURES").is_ok_and(|v| v == "1") {
        std::fs::write(dir.join("recurrent.onnx"), &bytes).unwrap();
        let text =
            array_text("x", &[3, 7, 3], &padded) + &array_text("sequence_lengths", &[3], &lens);
        std::fs::write(dir.join("recurrent_inputs.txt"), text).unwrap();
        println!(
            "wrote recurrent.onnx and its inputs: now run tests/fixtures/onnx/run_recurrent.py"
        );
        return;
    }
    let ran = std::fs::read(dir.join("recurrent.onnx")).unwrap();
    assert!(
        ran == bytes,
        "the export differs from the file onnxruntime ran: after a deliberate exporter change, \
         rerun this test with WGRAD_WRITE_FIXTURES=1, then tests/fixtures/onnx/run_recurrent.py"
    );
    let inputs = common::read_arrays(&dir.join("recurrent_inputs.txt"));
    assert_eq!(inputs[0].2, padded, "the fixture's inputs are the test's");
    let want = common::read_arrays(&dir.join("recurrent.txt"));
    assert_eq!(want.len(), 3);
    for ((name, _, want), got) in want.iter().zip(&got) {
        let d = max_diff(name, got, want);
        println!("{name}: differs from onnxruntime by {d:.2e}");
        assert!(d <= 1e-5, "{name} differs from onnxruntime by {d}");
    }
}

#[test]
fn an_exported_recurrent_model_imports_and_reproduces_its_outputs() {
    let ctx = common::ctx();
    let case = Case::new();
    let mut exec = Executor::new(&ctx, &case.g).unwrap();
    let bytes = onnx::export(&case.g, &exec, &case.outputs()).unwrap();
    let feed = [
        (case.x, &case.padded[..]),
        (case.g.sequence_lengths(), &case.lens[..]),
    ];
    let nodes = case.outputs().map(|(_, id)| id);
    let want = exec.eval(&nodes, &feed).unwrap();

    let model = Model::from_onnx(&bytes).unwrap();
    let mut imported = Executor::new(&ctx, model.graph()).unwrap();
    let x = model.input("x").unwrap();
    let lens = model.input("sequence lengths").unwrap();
    let outs = case.outputs().map(|(name, _)| model.output(name).unwrap());
    let got = imported
        .eval(&outs, &[(x, &case.padded[..]), (lens, &case.lens[..])])
        .unwrap();
    for ((name, _), (got, want)) in case.outputs().iter().zip(got.iter().zip(&want)) {
        let d = max_diff(name, got, want);
        println!("{name}: the imported model differs by {d:.2e}");
        assert!(d <= 1e-5, "{name}: the imported model differs by {d}");
    }
    // The recurrent weights stay trainable parameters (read through the file's layout).
    let names: Vec<String> = model
        .graph()
        .parameters()
        .iter()
        .filter_map(|&p| model.graph().name(p))
        .collect();
    for want in ["fwd.U", "bwd.U", "gru.U", "rnn.U", "fwd.h0", "dense.W"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}

#[test]
fn a_pytorch_style_lstm_imports_matches_onnxruntime_and_fine_tunes() {
    let dir = fixtures();
    let model = Model::load(&dir.join("pytorch_lstm.onnx")).unwrap();
    let arrays = common::read_arrays(&dir.join("pytorch_lstm.txt"));
    let (_, dims, input) = &arrays[0];
    let (steps, batch) = (dims[0], dims[1]);
    // wgrad feeds sequences batch-major: the file's time-major input, transposed.
    let x = swap01(input, steps, batch);
    let lens = vec![steps as f32; batch];
    let ctx = common::ctx();
    let mut exec = Executor::new(&ctx, model.graph()).unwrap();
    let names = ["output", "h_n", "scores"];
    let outs = names.map(|n| model.output(n).unwrap());
    let feed = [
        (model.input("input").unwrap(), &x[..]),
        (model.input("sequence lengths").unwrap(), &lens[..]),
    ];
    let got = exec.eval(&outs, &feed).unwrap();
    for ((name, dims, want), got) in arrays[1..].iter().zip(&got) {
        // Outputs come out batch first: [seq, batch, ..] and [dirs, batch, ..] swapped.
        let want = match name.as_str() {
            "output" | "h_n" => swap01(want, dims[0], dims[1]),
            _ => want.clone(),
        };
        let d = max_diff(name, got, &want);
        println!("{name}: differs from onnxruntime by {d:.2e}");
        assert!(d <= 1e-5, "{name} differs from onnxruntime by {d}");
    }
    // Both directions' W, R and B and the Linear's weight and bias, all trainable.
    let g = model.graph();
    assert_eq!(g.parameters().len(), 8);
    let y = g.input("labels", &[3]).unwrap();
    let loss = g
        .cross_entropy_with_softmax(model.output("scores").unwrap(), y)
        .unwrap();
    let mut trainer = Trainer::new(&ctx, g, loss, None, Learner::sgd(0.5)).unwrap();
    let labels: Vec<f32> = (0..3 * batch).map(|i| (i % 4 == 0) as u8 as f32).collect();
    let feed = [feed[0], feed[1], (y, &labels[..])];
    let first = trainer.train_minibatch(&feed, true).unwrap().unwrap().loss;
    for _ in 0..30 {
        trainer.train_minibatch(&feed, true).unwrap();
    }
    let last = trainer.train_minibatch(&feed, true).unwrap().unwrap().loss;
    assert!(
        last < 0.5 * first,
        "loss {first} → {last}: fine-tuning did not learn"
    );
}

#[test]
fn a_gru_and_rnn_with_lengths_import_match_onnxruntime_and_ignore_padding() {
    gru_and_rnn_match("gru_rnn.onnx");
}

#[test]
fn batch_major_recurrences_match_their_time_major_twins() {
    // onnxruntime runs only layout 0: the layout-1 twin must give its outputs.
    gru_and_rnn_match("gru_rnn_batchwise.onnx");
}

fn gru_and_rnn_match(file: &str) {
    let dir = fixtures();
    let model = Model::load(&dir.join(file)).unwrap();
    let arrays = common::read_arrays(&dir.join("gru_rnn.txt"));
    let (x, lens) = (&arrays[0].2, &arrays[1].2);
    let ctx = common::ctx();
    let mut exec = Executor::new(&ctx, model.graph()).unwrap();
    let outs = ["gru_states", "last"].map(|n| model.output(n).unwrap());
    let (xi, li) = (model.input("x").unwrap(), model.input("lens").unwrap());
    let got = exec.eval(&outs, &[(xi, &x[..]), (li, &lens[..])]).unwrap();
    for ((name, _, want), got) in arrays[2..].iter().zip(&got) {
        let d = max_diff(name, got, want);
        println!("{name}: differs from onnxruntime by {d:.2e}");
        assert!(d <= 1e-5, "{name} differs from onnxruntime by {d}");
    }
    // The third sequence (length 3) alone, padded to 4 steps with other junk, gives the
    // same outputs as inside the batch.
    let mut alone = [-7.0f32; 4 * 3];
    alone[..9].copy_from_slice(&x[2 * 21..2 * 21 + 9]);
    let one = exec
        .eval(&outs, &[(xi, &alone[..]), (li, &[3.0][..])])
        .unwrap();
    let d = max_diff("last, alone", &one[1], &got[1][6..9]);
    assert!(d <= 1e-6, "the sequence alone differs by {d}");
    let d = max_diff("states, alone", &one[0][..12], &got[0][2 * 28..2 * 28 + 12]);
    assert!(d <= 1e-6, "the sequence's states alone differ by {d}");
}

#[test]
fn recurrences_wgrad_does_not_compute_are_refused_by_name() {
    let e = Model::load(&fixtures().join("pytorch_gru.onnx"))
        .err()
        .expect("a GRU with linear_before_reset 1 must not import")
        .to_string();
    assert!(
        e.contains("/gru/GRU") && e.contains("linear_before_reset"),
        "{e}"
    );
}
