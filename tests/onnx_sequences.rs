//! ONNX export of sequence models, checked by onnxruntime: a bidirectional LSTM, a reverse
//! GRU and an RNN over sequences of lengths [1, 7, 3] (padding filled with junk) export to
//! the file `tests/fixtures/onnx/recurrent.onnx`, which onnxruntime ran
//! (`tests/fixtures/onnx/run_recurrent.py`, its outputs in `recurrent.txt`). The test checks
//! that today's export is that file byte for byte and that wgrad's outputs are
//! onnxruntime's. After a deliberate change to the exporter, rerun with
//! `WGRAD_WRITE_FIXTURES=1` (it writes the file and the inputs) and then the script.

mod common;

use std::path::{Path, PathBuf};

use wgrad::onnx;
use wgrad::{Executor, Graph, NodeId};

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

#[test]
fn recurrent_models_export_and_match_onnxruntime() {
    let ctx = common::ctx();
    let g = Graph::new();
    let x = g.input_sequence("x", &[3]).unwrap();
    let out = model(&g, x);
    let lengths = [1usize, 7, 3];
    let seqs: Vec<Vec<f32>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| values(100 + i as u64, 3 * l, 1.5))
        .collect();
    // Padded to 7 steps with junk: neither runtime may read it.
    let mut padded = vec![9.0f32; 3 * 7 * 3];
    for (b, s) in seqs.iter().enumerate() {
        padded[b * 7 * 3..b * 7 * 3 + s.len()].copy_from_slice(s);
    }
    let mut exec = Executor::new(&ctx, &g).unwrap();
    let outputs = [
        ("scores", out.scores),
        ("gru_states", out.gru),
        ("first", out.first),
    ];
    let bytes = onnx::export(&g, &exec, &outputs).unwrap();
    let lens: Vec<f32> = lengths.iter().map(|&l| l as f32).collect();
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
        assert_eq!(want.len(), got.len(), "{name}");
        let mut d = 0.0f32;
        for (i, (a, b)) in want.iter().zip(got).enumerate() {
            assert!(
                b.is_finite(),
                "{name}[{i}]: wgrad gave {b}, onnxruntime {a}"
            );
            d = d.max((a - b).abs());
        }
        println!("{name}: differs from onnxruntime by {d:.2e}");
        assert!(d <= 1e-5, "{name} differs from onnxruntime by {d}");
    }
}
