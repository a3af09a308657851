//! ONNX both ways, checked by other software: exported models run in tract (an independent
//! ONNX runtime, in Rust) and give wgrad's outputs; export → import → evaluate reproduces
//! them; a model made by onnx.helper imports and matches onnxruntime's outputs (the fixture
//! of `tests/fixtures/onnx/make_fixtures.py`). The MNIST models are briefly trained on the
//! shared data (see `common::mnist_dir`: they run whenever it exists and always in CI).

mod common;

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod example;

use std::path::Path;

use tract_onnx::prelude::InferenceFact;
use tract_onnx::prelude::{
    DatumExt, Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor,
};
use wgrad::data::mnist;
use wgrad::onnx::{self, Model};
use wgrad::{Executor, Graph, Init, Learner, NodeId, Padding, Shape, Trainer, WindowOpts};

/// Runs ONNX `bytes` in tract on `inputs` (shape, values); the outputs, flattened.
fn tract_run(bytes: &[u8], inputs: &[(Vec<usize>, &[f32])]) -> Vec<Vec<f32>> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .expect("tract reads the model");
    for (i, (shape, _)) in inputs.iter().enumerate() {
        let fact: InferenceFact = f32::fact(shape.clone()).into();
        model = model.with_input_fact(i, fact).expect("input fact");
    }
    let plan = model
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("tract plans the model");
    let values = inputs
        .iter()
        .map(|(s, v)| Tensor::from_shape(s, v).expect("tensor").into_tvalue())
        .collect();
    let out = plan.run(values).expect("tract runs the model");
    out.iter()
        .map(|t| {
            let t = t.cast_to::<f32>().expect("float output");
            let view = t.to_plain_array_view::<f32>().expect("a float array");
            view.iter().copied().collect()
        })
        .collect()
}

/// The largest |a - b|, failing on a length mismatch or a NaN.
fn max_diff(what: &str, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        assert!(!d.is_nan(), "{what}: element {i} is {x} vs {y}");
        worst = worst.max(d);
    }
    worst
}

/// Exports `outputs` of `g`, checks tract's and a re-imported wgrad's outputs against
/// `exec`'s on `feed`; returns the two largest differences.
fn check_both_ways(
    g: &Graph,
    exec: &mut Executor,
    feed: &[(NodeId, &[f32])],
    batch: usize,
    outputs: &[(&str, NodeId)],
) -> (f32, f32) {
    let ids: Vec<NodeId> = outputs.iter().map(|o| o.1).collect();
    let want = exec.eval(&ids, feed).unwrap();
    let bytes = onnx::export(g, exec, outputs).unwrap();
    // tract, with the inputs in the file's order (the order the export met them).
    let model = Model::from_onnx(&bytes).unwrap();
    let tract_inputs: Vec<(Vec<usize>, &[f32])> = model
        .inputs()
        .iter()
        .map(|(name, _)| {
            let id = g.find(name).unwrap();
            let (_, v) = feed.iter().find(|(f, _)| *f == id).unwrap();
            (g.shape(id).resolve(batch), *v)
        })
        .collect();
    let from_tract = tract_run(&bytes, &tract_inputs);
    let mut tract_worst = 0.0f32;
    for ((name, _), (t, w)) in outputs.iter().zip(from_tract.iter().zip(&want)) {
        tract_worst = tract_worst.max(max_diff(&format!("tract {name}"), t, w));
    }
    // wgrad again, from the file.
    let ctx = common::ctx();
    let mut again = Executor::new(&ctx, model.graph()).unwrap();
    let feed2: Vec<(NodeId, &[f32])> = feed
        .iter()
        .map(|(id, v)| (model.input(&g.name(*id).unwrap()).unwrap(), *v))
        .collect();
    let ids2: Vec<NodeId> = outputs
        .iter()
        .map(|(n, _)| model.output(n).unwrap())
        .collect();
    let got = again.eval(&ids2, &feed2).unwrap();
    let mut wgrad_worst = 0.0f32;
    for ((name, _), (a, w)) in outputs.iter().zip(got.iter().zip(&want)) {
        wgrad_worst = wgrad_worst.max(max_diff(&format!("re-imported {name}"), a, w));
    }
    (tract_worst, wgrad_worst)
}

#[test]
fn mnist_models_match_tract_and_round_trip() {
    let Some(dir) = common::mnist_dir() else {
        return;
    };
    let ctx = common::ctx();
    let (train, test) = mnist::load(&dir).unwrap();
    let (n, batch) = (50, 64);
    let images = &test.stream(mnist::IMAGES).unwrap()[..n * 784];
    for kind in ["logreg", "mlp", "cnn", "cnn-pool"] {
        let g = Graph::with_seed(7);
        let (x, y, z) = example::graph(&g, kind).unwrap();
        let loss = g.cross_entropy_with_softmax(z, y).unwrap();
        let mut trainer = Trainer::new(&ctx, &g, loss, None, Learner::sgd(0.1)).unwrap();
        for step in 0..6 {
            let part = train.slice(step * batch..(step + 1) * batch).unwrap();
            let (xs, ys) = (part.stream(mnist::IMAGES), part.stream(mnist::LABELS));
            trainer
                .train_minibatch(&[(x, xs.unwrap()), (y, ys.unwrap())], true)
                .unwrap();
        }
        let exec = trainer.executor();
        let (tract, again) = check_both_ways(&g, exec, &[(x, images)], n, &[("scores", z)]);
        println!("{kind}: tract differs by {tract:.2e}, re-imported wgrad by {again:.2e}");
        assert!(tract <= 1e-4, "{kind}: tract's scores differ by {tract}");
        assert!(
            again <= 1e-5,
            "{kind}: re-imported scores differ by {again}"
        );
    }
}

/// The outputs of [`many_ops`].
struct ManyOps {
    image: NodeId,
    ids: NodeId,
    outputs: Vec<(&'static str, NodeId)>,
}

fn uniform(low: f32, high: f32) -> Init {
    Init::Uniform { low, high }
}

/// A graph of most exportable ops, on odd shapes, with random parameters: convolutions with
/// SAME_UPPER and asymmetric padding and dilation, all three poolings, batch normalisation
/// (evaluation), a dense layer, softmax, an embedding, movement, reductions and comparisons.
fn many_ops(g: &Graph) -> wgrad::Result<ManyOps> {
    let image = g.input("image", &[2, 9, 11])?;
    let ids = g.input("ids", &[3])?;
    let w1 = g.parameter("w1", &[4, 2, 3, 3], Init::GlorotUniform)?;
    let b1 = g.parameter("b1", &[4], uniform(-0.5, 0.5))?;
    let upper = WindowOpts::default().stride(2).padding(Padding::SameUpper);
    let c1 = g.relu(g.conv2d(image, w1, Some(b1), upper)?)?; // [4, 5, 6]
    let w2 = g.parameter("w2", &[3, 4, 2, 2], Init::GlorotUniform)?;
    let pads = Padding::Pads {
        begin: (1, 0),
        end: (0, 2),
    };
    let dilated = WindowOpts {
        dilation: (1, 2),
        ..WindowOpts::default().padding(pads)
    };
    let c2 = g.tanh(g.conv2d(c1, w2, None, dilated)?)?;
    let pool = WindowOpts::default()
        .stride(2)
        .padding(Padding::Explicit(1, 1));
    let p1 = g.avg_pool2d(c2, (3, 3), pool)?;
    let p2 = g.avg_pool2d_counting_pads(c2, (3, 3), pool)?;
    let lower = WindowOpts::default().padding(Padding::SameLower);
    let p3 = g.max_pool2d(c2, (2, 2), lower)?;
    let upper2 = WindowOpts::default().stride(2).padding(Padding::SameUpper);
    let p3 = g.avg_pool2d(p3, (3, 3), upper2)?;
    let cat = g.concat(g.concat(p1, p2, 1)?, p3, 1)?;
    let bn = g.batch_norm("bn", cat, 1, 0.9, 1e-5)?;
    let k = g.shape(bn).per_sample();
    let flat = g.reshape(bn, Shape::batched(&[k]))?;
    let w3 = g.parameter("w3", &[k, 7], Init::GlorotUniform)?;
    let b3 = g.parameter("b3", &[7], uniform(-0.5, 0.5))?;
    let sigmoid = Some(wgrad::UnaryOp::Sigmoid);
    let dense = g.bias_act(g.matmul(flat, w3)?, b3, -1, sigmoid)?;
    let probs = g.softmax(g.scale(dense, 3.0)?, -1)?;
    let table = g.parameter("table", &[5, 4], uniform(-1.0, 1.0))?;
    let e = g.embedding(ids, table)?; // [3, 4]
    let t = g.permute(e, &[0, 2, 1])?; // [4, 3]
    let s = g.slice(t, 2, 1, 3)?; // [4, 2]
    let pos = g.add(g.abs(s)?, g.scalar(0.5))?;
    let mixed = g.div(g.log(pos)?, g.sqrt(pos)?)?;
    let mixed = g.maximum(mixed, g.neg(g.exp(s)?)?)?;
    let sums = g.reduce(wgrad::ReduceOp::Sum, mixed, &[2], true)?; // [4, 1]
    let big = g.binary(wgrad::BinaryOp::Gt, sums, g.scalar(0.0))?;
    let aux = g.concat(g.log_softmax(mixed, -1)?, g.mul(big, sums)?, 2)?;
    let mean = g.reduce_mean(dense, &[1])?;
    let arg = g.argmax(probs, -1)?;
    let stats = g.add(g.minimum(mean, g.scalar(0.6))?, arg)?;
    Ok(ManyOps {
        image,
        ids,
        outputs: vec![("probabilities", probs), ("aux", aux), ("stats", stats)],
    })
}

#[test]
fn many_ops_match_tract_and_round_trip() {
    let ctx = common::ctx();
    let g = Graph::with_seed(3);
    let m = many_ops(&g).unwrap();
    let batch = 3;
    let image = common::rand_vec(batch * 2 * 9 * 11, 1);
    let ids: Vec<f32> = (0..batch * 3).map(|i| ((i * 7 + 2) % 5) as f32).collect();
    let mut exec = Executor::new(&ctx, &g).unwrap();
    let feed = [(m.image, &image[..]), (m.ids, &ids[..])];
    let (tract, again) = check_both_ways(&g, &mut exec, &feed, batch, &m.outputs);
    println!("many ops: tract differs by {tract:.2e}, re-imported wgrad by {again:.2e}");
    assert!(tract <= 1e-5, "tract differs by {tract}");
    assert!(again <= 1e-6, "re-imported wgrad differs by {again}");
}

#[test]
fn a_model_made_by_onnx_helper_matches_onnxruntime() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let model = Model::load(&dir.join("pytorch_like.onnx")).unwrap();
    let arrays = common::read_arrays(&dir.join("pytorch_like.txt"));
    let (_, dims, input) = &arrays[0];
    let ctx = common::ctx();
    let mut exec = Executor::new(&ctx, model.graph()).unwrap();
    let outs = [
        model.output("logits").unwrap(),
        model.output("probabilities").unwrap(),
    ];
    let feed = [(model.input("input").unwrap(), &input[..])];
    let got = exec.eval(&outs, &feed).unwrap();
    assert_eq!(dims[0], 3);
    for ((name, _, want), got) in arrays[1..].iter().zip(&got) {
        let d = max_diff(name, got, want);
        println!("{name}: differs from onnxruntime by {d:.2e}");
        assert!(d <= 1e-5, "{name} differs from onnxruntime by {d}");
    }
    // The weights are trainable parameters: a training step moves them.
    let params = model.graph().parameters();
    assert_eq!(
        params.len(),
        8,
        "conv, bn scale/shift and fc weights and biases"
    );
}

#[test]
fn an_imported_model_fine_tunes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let model = Model::load(&dir.join("pytorch_like.onnx")).unwrap();
    let arrays = common::read_arrays(&dir.join("pytorch_like.txt"));
    let g = model.graph();
    let (x, z) = (
        model.input("input").unwrap(),
        model.output("logits").unwrap(),
    );
    let y = g.input("labels", &[10]).unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let ctx = common::ctx();
    let mut trainer = Trainer::new(&ctx, g, loss, None, Learner::sgd(0.05)).unwrap();
    let labels: Vec<f32> = (0..30).map(|i| (i % 11 == 0) as u8 as f32).collect();
    let feed = [(x, &arrays[0].2[..]), (y, &labels[..])];
    let first = trainer.train_minibatch(&feed, true).unwrap().unwrap().loss;
    for _ in 0..20 {
        trainer.train_minibatch(&feed, true).unwrap();
    }
    let last = trainer.train_minibatch(&feed, true).unwrap().unwrap().loss;
    assert!(
        last < 0.5 * first,
        "loss {first} → {last}: fine-tuning did not learn"
    );
}

#[test]
fn export_errors_name_the_op() {
    let ctx = common::ctx();
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let y = g.input("y", &[3]).unwrap();
    let loss = g.cross_entropy_with_softmax(x, y).unwrap();
    let exec = Executor::new(&ctx, &g).unwrap();
    let e = onnx::export(&g, &exec, &[("loss", loss)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("CrossEntropy") && e.contains("loss"), "{e}");
    let e = onnx::export(&g, &exec, &[("x", x)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("already"), "{e}");
    let e = onnx::export(&g, &exec, &[]).unwrap_err().to_string();
    assert!(e.contains("no outputs"), "{e}");
    let seq = g.input_sequence("seq", &[2]).unwrap();
    let sum = g.sequence_reduce_sum(seq).unwrap();
    let e = onnx::export(&g, &exec, &[("sum", sum)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SeqReduce") && e.contains("sequence op"), "{e}");
    // An LSTM's cell states at every step: ONNX's LSTM gives only its hidden states.
    let w = g.parameter("w", &[2, 4], Init::Zeros).unwrap();
    let u = g.parameter("u", &[1, 4], Init::Zeros).unwrap();
    let b = g.parameter("b", &[4], Init::Zeros).unwrap();
    let zero = g.scalar(0.0);
    let (_, c) = g.lstm(seq, w, u, b, zero, zero, false, 1.0).unwrap();
    let e = onnx::export(&g, &exec, &[("c", c)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cell states"), "{e}");
}

#[test]
fn import_errors_name_the_node_and_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let path = dir.join("unsupported.onnx");
    let e = Model::load(&path).err().unwrap().to_string();
    assert!(
        e.contains("the_erf") && e.contains("Erf") && e.contains("unsupported.onnx"),
        "{e}"
    );
    let e = Model::from_onnx(b"not a model at all")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not an ONNX model"), "{e}");
    let bytes = std::fs::read(dir.join("pytorch_like.onnx")).unwrap();
    let e = Model::from_onnx(&bytes[..bytes.len() / 2])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("onnx"), "{e}");
    let e = Model::load(&dir.join("missing.onnx"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.onnx"), "{e}");
}

#[test]
fn model_files_save_and_load() {
    let ctx = common::ctx();
    let g = Graph::with_seed(5);
    let x = g.input("x", &[3]).unwrap();
    let w = g.parameter("w", &[3, 2], Init::GlorotUniform).unwrap();
    let z = g.softmax(g.matmul(x, w).unwrap(), -1).unwrap();
    let mut exec = Executor::new(&ctx, &g).unwrap();
    exec.set_parameter(w, &[0.5, -1.0, 2.0, 0.25, -0.75, 1.5])
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wgrad-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    let model = Model::new(g, &[("p", z)]);
    model.save(&path, &exec).unwrap();
    let loaded = Model::load(&path).unwrap();
    let mut again = Executor::new(&ctx, loaded.graph()).unwrap();
    let v = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
    let want = exec.eval(&[z], &[(x, &v)]).unwrap();
    let got = again
        .eval(
            &[loaded.output("p").unwrap()],
            &[(loaded.input("x").unwrap(), &v)],
        )
        .unwrap();
    assert!(max_diff("p", &got[0], &want[0]) <= 1e-6);
    let e = loaded.output("q").unwrap_err().to_string();
    assert!(e.contains("\"p\""), "{e}");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary file is left beside the model");
    std::fs::remove_dir_all(&dir).unwrap();
}
