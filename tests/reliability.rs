//! Reliability: tie conventions of gradients, NaN propagation, the numerics guard, device
//! errors, bounded memory, all-or-nothing loads and honest empties. Each test here failed
//! before the fix it guards.

mod common;
use wgrad::{Executor, Graph, NodeId, Shape};

/// Gradients of `sum(r ⊙ build(x))` with respect to a fixed input `x`.
fn grad_of(
    dims: &[usize],
    x: &[f32],
    build: impl Fn(&Graph, NodeId) -> NodeId,
    r: &[f32],
) -> Vec<f32> {
    let g = Graph::new();
    let xi = g.input_with_shape("x", Shape::fixed(dims)).unwrap();
    let out = build(&g, xi);
    let ri = g.input_with_shape("r", g.shape(out)).unwrap();
    let loss = g.reduce_sum(g.mul(out, ri).unwrap(), &[]).unwrap();
    let gx = g.grad(loss, &[xi]).unwrap();
    let mut ex = Executor::new(&common::ctx(), &g).unwrap();
    ex.eval(&gx, &[(xi, x), (ri, r)]).unwrap().remove(0)
}

#[test]
fn reduce_max_and_min_split_the_gradient_among_ties() {
    // Rows of 5 with 1, 2, 3 and 5 tied extrema.
    let x = [
        1.0, 3.0, 0.0, 2.0, -1.0, //
        3.0, 1.0, 3.0, 0.0, 2.0, //
        -2.0, 4.0, 4.0, 1.0, 4.0, //
        7.0, 7.0, 7.0, 7.0, 7.0f32,
    ];
    let r = [2.0, -1.0, 0.5, 3.0f32];
    let gx = grad_of(&[4, 5], &x, |g, x| g.reduce_max(x, &[1]).unwrap(), &r);
    for row in 0..4 {
        let vals = &x[row * 5..row * 5 + 5];
        let top = vals.iter().cloned().fold(f32::MIN, f32::max);
        let ties = vals.iter().filter(|&&v| v == top).count() as f32;
        for j in 0..5 {
            let want = if vals[j] == top { r[row] / ties } else { 0.0 };
            assert!(
                (gx[row * 5 + j] - want).abs() < 1e-6,
                "row {row} col {j}: {} vs {want}",
                gx[row * 5 + j]
            );
        }
        let sum: f32 = gx[row * 5..row * 5 + 5].iter().sum();
        assert!((sum - r[row]).abs() < 1e-6, "row {row} sums to {sum}");
    }
    // Minimum over every axis, three ties.
    let x = [1.0, 1.0, 2.0, 0.0, 0.0, 0.0f32];
    let gx = grad_of(
        &[2, 3],
        &x,
        |g, x| g.reduce_min(x, &[0, 1]).unwrap(),
        &[6.0],
    );
    assert_eq!(gx, vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
}

#[test]
fn relu_maximum_and_minimum_propagate_nan() {
    let nan = f32::NAN;
    let (y, _) = common::run(&[vec![4]], &[vec![nan, -1.0, 2.0, nan]], |g, x| {
        g.relu(x[0]).unwrap()
    });
    assert!(y[0].is_nan() && y[3].is_nan(), "relu: {y:?}");
    assert_eq!(&y[1..3], &[0.0, 2.0]);
    for which in ["maximum", "minimum"] {
        let (y, _) = common::run(
            &[vec![3], vec![3]],
            &[vec![nan, 1.0, 5.0], vec![0.0, nan, 3.0]],
            |g, x| match which {
                "maximum" => g.maximum(x[0], x[1]).unwrap(),
                _ => g.minimum(x[0], x[1]).unwrap(),
            },
        );
        assert!(y[0].is_nan() && y[1].is_nan(), "{which}: {y:?}");
        assert_eq!(y[2], if which == "maximum" { 5.0 } else { 3.0 });
    }
    let (y, _) = common::run(
        &[vec![2, 3]],
        &[vec![1.0, nan, 0.0, 4.0, 2.0, 3.0]],
        |g, x| g.reduce_max(x[0], &[1]).unwrap(),
    );
    assert!(y[0].is_nan() && y[1] == 4.0, "reduce_max: {y:?}");
}

/// A two-layer ReLU classifier of 4 features into 2 classes, with `learner`.
fn mlp(ctx: &wgrad::Context, learner: wgrad::Learner) -> (wgrad::Trainer, NodeId, NodeId) {
    let (t, x, y, _) = deep(ctx, &[6], learner);
    (t, x, y)
}

/// Eight samples with one-hot labels; `bad` replaces feature 2 of sample 5.
fn batch(bad: Option<f32>) -> (Vec<f32>, Vec<f32>) {
    let mut x = common::rand_vec(32, 17);
    if let Some(v) = bad {
        x[5 * 4 + 2] = v;
    }
    let y = (0..8)
        .flat_map(|i| [(i % 2) as f32, (1 - i % 2) as f32])
        .collect();
    (x, y)
}

/// Every parameter and learner state value, as bits (so that NaN equals itself).
fn weights(t: &mut wgrad::Trainer) -> Vec<Vec<u32>> {
    let state = t.executor().export_state().unwrap();
    state
        .into_iter()
        .map(|s| s.2.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn a_non_finite_step_is_an_error_and_updates_nothing() {
    let ctx = common::ctx();
    for learner in [
        wgrad::Learner::sgd(0.1),
        wgrad::Learner::momentum_sgd(0.1, 0.9),
        wgrad::Learner::adam(0.01),
        wgrad::Learner::fsadagrad(0.01, 0.9),
    ] {
        let (mut t, x, y) = mlp(&ctx, learner);
        let (gx, gy) = batch(None);
        t.train_minibatch(&[(x, &gx), (y, &gy)], true).unwrap();
        let before = weights(&mut t);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (bx, by) = batch(Some(bad));
            let e = t
                .train_minibatch(&[(x, &bx), (y, &by)], true)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("non-finite") && e.contains("step ") && e.contains("not applied"),
                "{learner:?} {bad}: {e}"
            );
            assert_eq!(
                weights(&mut t),
                before,
                "{learner:?} {bad}: weights changed"
            );
        }
        // A step that is never read back still updates nothing, and the next read says so.
        let (bx, by) = batch(Some(f32::NAN));
        t.train_minibatch(&[(x, &bx), (y, &by)], false).unwrap();
        let bad_step = t.executor().step();
        let e = t.train_minibatch(&[(x, &gx), (y, &gy)], true).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("step {bad_step}:")),
            "{learner:?}: {e}"
        );
        assert_eq!(weights(&mut t), before, "{learner:?}: unread bad step");
        // Training goes on once the bad step is reported.
        let s = t
            .train_minibatch(&[(x, &gx), (y, &gy)], true)
            .unwrap()
            .unwrap();
        assert!(s.loss.is_finite());
        assert_ne!(
            weights(&mut t),
            before,
            "{learner:?}: good steps update again"
        );
    }
}

#[test]
fn a_diverging_learning_rate_stops_before_weights_overflow() {
    let ctx = common::ctx();
    let (mut t, x, y) = mlp(&ctx, wgrad::Learner::sgd(1e6));
    let (gx, gy) = batch(None);
    let mut err = None;
    for _ in 0..500 {
        match t.train_minibatch(&[(x, &gx), (y, &gy)], true) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    let e = err.expect("a learning rate of 1e6 must end in a non-finite error");
    assert!(e.contains("non-finite"), "{e}");
    for w in weights(&mut t) {
        assert!(
            w.iter().all(|v| f32::from_bits(*v).is_finite()),
            "weights left non-finite: {e}"
        );
    }
}

#[test]
fn the_guard_names_the_parameter_whose_gradient_or_update_is_non_finite() {
    let ctx = common::ctx();
    // loss = Σ sqrt(w² + x²) + 4 Σ v: finite at w = x = 0, but its gradient there is 0/0.
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let v = g.parameter("v", &[5], wgrad::Init::Const(1.0)).unwrap();
    let w = g.parameter("w", &[3], wgrad::Init::Zeros).unwrap();
    let r = g
        .sqrt(g.add(g.mul(w, w).unwrap(), g.mul(x, x).unwrap()).unwrap())
        .unwrap();
    let loss = g
        .add(
            g.reduce_sum(r, &[1]).unwrap(),
            g.scale(g.reduce_sum(v, &[]).unwrap(), 4.0).unwrap(),
        )
        .unwrap();
    let mut t = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::sgd(0.1)).unwrap();
    let e = t
        .train_minibatch(&[(x, &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0])], true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step 1: non-finite gradient of parameter 'w' (near element 0)"),
        "{e}"
    );
    // A finite gradient (4 for v) whose update overflows f32.
    let mut t = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::sgd(3e38)).unwrap();
    let e = t
        .train_minibatch(&[(x, &[1.0, 1.0, 1.0, 1.0, 2.0, 3.0])], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite update"), "{e}");
    assert!(e.contains("parameter 'v' (near element 0)"), "{e}");
}

/// A classifier of 4 features with hidden layers of `widths`, trained by `learner`.
fn deep(
    ctx: &wgrad::Context,
    widths: &[usize],
    learner: wgrad::Learner,
) -> (wgrad::Trainer, NodeId, NodeId, Graph) {
    use wgrad::nn::{Dense, Sequential};
    let g = Graph::with_seed(3);
    let x = g.input("x", &[4]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let mut s = Sequential::new();
    for &w in widths {
        s = s.add(Dense::new(w).relu());
    }
    let z = s.add(Dense::new(2)).build(&g, x).unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let t = wgrad::Trainer::new(ctx, &g, loss, None, learner).unwrap();
    (t, x, y, g)
}

fn temp_dir(what: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wgrad-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn checkpoint_loads_are_all_or_nothing() {
    let ctx = common::ctx();
    let dir = temp_dir("loads");
    let meta = std::collections::HashMap::new();
    let (gx, gy) = batch(None);
    let saved = |widths: &[usize], learner: wgrad::Learner, name: &str| {
        let (mut t, x, y, _) = deep(&ctx, widths, learner);
        t.train_minibatch(&[(x, &gx), (y, &gy)], true).unwrap();
        let p = dir.join(name);
        t.save_checkpoint(&p, &meta).unwrap();
        p
    };
    let adam3 = saved(&[5, 5, 5], wgrad::Learner::adam(0.01), "adam3.safetensors");
    let adam2 = saved(&[5, 5], wgrad::Learner::adam(0.01), "adam2.safetensors");
    let (mut t, x, y, _) = deep(&ctx, &[5, 5], wgrad::Learner::momentum_sgd(0.1, 0.9));
    t.train_minibatch(&[(x, &gx), (y, &gy)], true).unwrap();
    let before = weights(&mut t);
    let steps = t.executor().step();
    // Another learner, another depth: errors naming the first difference, nothing changed.
    let e = t.load_checkpoint(&adam3).unwrap_err().to_string();
    assert!(
        e.contains("Adam learner") && e.contains("SgdMomentum"),
        "{e}"
    );
    let (mut t2, _, _, _) = deep(&ctx, &[5, 5], wgrad::Learner::adam(0.01));
    let before2 = weights(&mut t2);
    let e = t2.load_checkpoint(&adam3).unwrap_err().to_string();
    assert!(
        e.contains("dense3.weight has shape [5, 5] in the checkpoint, [5, 2] in the model"),
        "{e}"
    );
    assert_eq!(weights(&mut t2), before2, "a failed load changed weights");
    assert_eq!(weights(&mut t), before, "a failed load changed weights");
    assert_eq!(t.executor().step(), steps);
    // Same depth, other widths: the shape is named.
    let adam_wide = saved(&[5, 7], wgrad::Learner::adam(0.01), "wide.safetensors");
    let e = t2.load_checkpoint(&adam_wide).unwrap_err().to_string();
    assert!(e.contains("has shape") && e.contains("[5, 7]"), "{e}");
    assert_eq!(weights(&mut t2), before2);
    // The matching file loads. A partial load from another learner takes the weights and
    // names the learner state it could not fill.
    t2.load_checkpoint(&adam2).unwrap();
    let (_, skipped) = t.load_checkpoint_partial(&adam2).unwrap();
    assert!(
        skipped.contains(&"dense1.weight/learner0".to_string()),
        "{skipped:?}"
    );
    assert_eq!(weights(&mut t)[0], weights(&mut t2)[0]);
    // Partial loads still check shapes.
    assert!(t2.load_checkpoint_partial(&adam_wide).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_weights_are_never_saved_or_loaded() {
    let ctx = common::ctx();
    let dir = temp_dir("finite");
    let meta = std::collections::HashMap::new();
    let (mut t, _, _, g) = deep(&ctx, &[3], wgrad::Learner::sgd(0.1));
    let good = dir.join("good.safetensors");
    t.save_checkpoint(&good, &meta).unwrap();
    let kept = std::fs::read(&good).unwrap();
    // A NaN written into a weight: saving fails and the old file stays.
    let mut state = t.executor().export_state().unwrap();
    let w0 = state[0].clone();
    let mut bad = w0.2.clone();
    bad[1] = f32::NAN;
    let id = g.parameters()[0];
    assert_eq!(t.executor().parameter(id).unwrap(), w0.2);
    let _ = &mut state;
    t.executor().set_parameter(id, &bad).unwrap();
    let e = t.save_checkpoint(&good, &meta).unwrap_err().to_string();
    assert!(e.contains("not saved") && e.contains("NaN"), "{e}");
    assert_eq!(std::fs::read(&good).unwrap(), kept);
    // A file holding a NaN is refused, and so is one with a tensor the model lacks.
    let info: std::collections::HashMap<String, String> =
        [("wgrad.minibatches", "0"), ("wgrad.step", "0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let write = |state: &[(String, Vec<usize>, Vec<f32>)], name: &str| {
        let bytes: Vec<Vec<u8>> = state
            .iter()
            .map(|s| s.2.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<_> = state
            .iter()
            .zip(&bytes)
            .map(|(s, b)| {
                let dtype = safetensors::Dtype::F32;
                let v = safetensors::tensor::TensorView::new(dtype, s.1.clone(), b).unwrap();
                (s.0.clone(), v)
            })
            .collect();
        let p = dir.join(name);
        std::fs::write(
            &p,
            safetensors::serialize(views, Some(info.clone())).unwrap(),
        )
        .unwrap();
        p
    };
    let mut extra = state.clone();
    extra.push(("stray".to_string(), vec![1], vec![0.0]));
    state[0].2[1] = f32::NAN;
    let before = weights(&mut t);
    let e = t
        .load_checkpoint(&write(&state, "nan.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a finite number"), "{e}");
    let e = t
        .load_checkpoint(&write(&extra, "extra.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stray is in the checkpoint but not in the model"),
        "{e}"
    );
    assert_eq!(weights(&mut t), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_step_counter_survives_a_checkpoint_past_u32() {
    let ctx = common::ctx();
    let dir = temp_dir("step");
    let (mut t, _, _, _) = deep(&ctx, &[3], wgrad::Learner::sgd(0.1));
    t.executor().set_step(5_000_000_123);
    let p = dir.join("s.safetensors");
    t.save_checkpoint(&p, &Default::default()).unwrap();
    let (mut t2, _, _, _) = deep(&ctx, &[3], wgrad::Learner::sgd(0.1));
    t2.load_checkpoint(&p).unwrap();
    assert_eq!(t2.executor().step(), 5_000_000_123);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memory_stays_bounded_across_two_hundred_batch_sizes() {
    let ctx = common::ctx();
    let (mut t, x, y) = mlp(&ctx, wgrad::Learner::adam(0.01));
    let data = common::rand_vec(200 * 4, 5);
    let labels: Vec<f32> = (0..200)
        .flat_map(|i| [(i % 2) as f32, (1 - i % 2) as f32])
        .collect();
    let sweep = |t: &mut wgrad::Trainer| {
        for b in 1..=200 {
            let feed = [(x, &data[..b * 4]), (y, &labels[..b * 2])];
            t.train_minibatch(&feed, true).unwrap();
            t.evaluate_minibatch(&feed).unwrap();
        }
    };
    let start = ctx.memory();
    sweep(&mut t);
    let first = ctx.memory();
    sweep(&mut t);
    let second = ctx.memory();
    assert!(t.executor().cached_plans() <= 16);
    // 400 plans were built per sweep; at most 16 are alive, so the second sweep ends where
    // the first did (the same batch sizes are cached at the end of both).
    assert!(first.buffers > start.buffers, "{start:?} {first:?}");
    assert_eq!(
        second, first,
        "live memory grew from {first:?} to {second:?}"
    );
    // And 16 plans of at most 200 samples of a 4-6-2 network are small.
    assert!(
        first.bytes - start.bytes < 16 << 20,
        "{start:?} → {first:?}"
    );
    // Dropping the trainer frees everything it made.
    drop(t);
    assert!(
        ctx.memory().bytes <= start.bytes,
        "{:?} vs {start:?}",
        ctx.memory()
    );
}

#[test]
fn check_numerics_names_the_first_op_that_made_a_non_finite_value() {
    let ctx = wgrad::Context::with_options(wgrad::ContextOptions {
        check_numerics: true,
        ..Default::default()
    })
    .unwrap();
    // log(0) = -inf, which relu turns into 0: the output looks fine.
    let build = |g: &Graph| {
        let x = g.input("x", &[3]).unwrap();
        let y = g
            .reduce_sum(g.relu(g.log(x).unwrap()).unwrap(), &[])
            .unwrap();
        (x, y)
    };
    let g = Graph::new();
    let (x, y) = build(&g);
    let mut plain = Executor::new(&common::ctx(), &g).unwrap();
    let v = plain.eval(&[y], &[(x, &[0.0, 1.0, 2.0])]).unwrap();
    assert!(v[0][0].is_finite(), "{v:?}");
    let mut checked = Executor::new(&ctx, &g).unwrap();
    let e = checked
        .eval(&[y], &[(x, &[0.0, 1.0, 2.0])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("node 1 (Unary { op: Log"), "{e}");
    // Finite inputs pass, and the check resets between calls.
    assert!(checked.eval(&[y], &[(x, &[3.0, 1.0, 2.0])]).is_ok());
}

#[test]
fn device_errors_are_results_and_training_goes_on() {
    use wgrad::nn::{Dense, Sequential};
    let ctx = common::ctx();
    // A hidden layer whose activations at a huge batch exceed what one binding may hold.
    let g = Graph::with_seed(2);
    let x = g.input("x", &[4]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let z = Sequential::new()
        .add(Dense::new(1024).relu())
        .add(Dense::new(2))
        .build(&g, x)
        .unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let mut t = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::sgd(0.1)).unwrap();
    let huge = (ctx.max_binding_bytes() / 4 / 1024 + 1) as usize;
    let (bx, by) = (vec![0.5f32; huge * 4], vec![0.5f32; huge * 2]);
    let e = t
        .train_minibatch(&[(x, &bx), (y, &by)], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bytes but the adapter allows at most"), "{e}");
    let (sx, sy) = batch(None);
    let s = t
        .train_minibatch(&[(x, &sx), (y, &sy)], true)
        .unwrap()
        .unwrap();
    assert!(s.loss.is_finite());
    // A validation error inside a scope is an error at once; one outside any scope is the
    // next call's error; after both, training goes on.
    let e = ctx
        .inject_fault(wgrad::Fault::InvalidBuffer)
        .unwrap_err()
        .to_string();
    assert!(e.contains("injected invalid buffer"), "{e}");
    ctx.inject_fault(wgrad::Fault::UncapturedError).unwrap();
    let e = t
        .train_minibatch(&[(x, &sx), (y, &sy)], true)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("gpu: training step:"), "{e}");
    t.train_minibatch(&[(x, &sx), (y, &sy)], true).unwrap();
}

#[test]
fn a_lost_device_fails_every_later_call_fast() {
    let ctx = wgrad::Context::new().unwrap();
    let (mut t, x, y) = mlp(&ctx, wgrad::Learner::sgd(0.1));
    let (sx, sy) = batch(None);
    t.train_minibatch(&[(x, &sx), (y, &sy)], true).unwrap();
    ctx.inject_fault(wgrad::Fault::LoseDevice).unwrap();
    for _ in 0..3 {
        let e = t
            .train_minibatch(&[(x, &sx), (y, &sy)], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("device was lost"), "{e}");
    }
    assert!(ctx.wait().is_err());
}

#[test]
fn pipelined_steps_report_a_bad_step_once_and_the_step_it_blocked() {
    let ctx = common::ctx();
    let (mut t, x, y) = mlp(&ctx, wgrad::Learner::sgd(0.1));
    let (gx, gy) = batch(None);
    let (bx, by) = batch(Some(f32::NAN));
    let good = [(x, &gx[..]), (y, &gy[..])];
    let bad = [(x, &bx[..]), (y, &by[..])];
    assert!(t.train_minibatch_pipelined(&good).unwrap().is_none()); // step 1
    assert!(t.train_minibatch_pipelined(&bad).unwrap().is_some()); // step 2; reads 1
    let before = weights(&mut t);
    // Step 3 runs while step 2's flag is still set, so it is skipped too; reading step 2
    // reports it.
    let e = t.train_minibatch_pipelined(&good).unwrap_err().to_string();
    assert!(e.starts_with("step 2: non-finite loss"), "{e}");
    assert_eq!(weights(&mut t), before, "steps 2 and 3 changed nothing");
    // Step 4 (after the clear) trains; reading step 3 says it was skipped, naming step 2.
    let e = t.train_minibatch_pipelined(&good).unwrap_err().to_string();
    assert!(
        e.starts_with("step 3:") && e.contains("value of step 2"),
        "{e}"
    );
    // Reading step 4: fine, and it did train.
    assert!(t.finish_minibatches().unwrap().is_some());
    assert_ne!(weights(&mut t), before);
}
