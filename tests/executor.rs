//! The executor: one submit per step, no allocation once warm, buffer reuse, batch sizes.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;
use common::*;
use wgrad::{Executor, Graph, Init, NodeId, Sgd, Trainer};

fn small_model(g: &Graph) -> (wgrad::NodeId, wgrad::NodeId, wgrad::NodeId, wgrad::NodeId) {
    let x = g.input("x", &[3]).unwrap();
    let y = g.input("y", &[4]).unwrap();
    let w1 = g.parameter("w1", &[3, 8], Init::GlorotUniform).unwrap();
    let b1 = g.parameter("b1", &[8], Init::Zeros).unwrap();
    let w2 = g.parameter("w2", &[8, 4], Init::GlorotUniform).unwrap();
    let h = g
        .relu(g.add(g.matmul(x, w1).unwrap(), b1).unwrap())
        .unwrap();
    let z = g.matmul(h, w2).unwrap();
    (x, y, z, g.cross_entropy_with_softmax(z, y).unwrap())
}

#[test]
fn a_step_is_one_submit_and_warm_steps_allocate_nothing() {
    let ctx = ctx();
    let g = Graph::new();
    let (x, y, z, loss) = small_model(&g);
    let err = g.classification_error(z, y).unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), Sgd::new(0.1).momentum(0.9)).unwrap();
    let xd = rand_vec(5 * 3, 1);
    let yd: Vec<f32> = (0..20)
        .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
        .collect();
    let feed = [(x, &xd[..]), (y, &yd[..])];
    t.train_minibatch(&feed, true).unwrap();
    let (subs, bufs) = (ctx.submits(), ctx.buffers_created());
    assert!(
        t.train_minibatch(&feed, false).unwrap().is_none(),
        "nothing read unless asked"
    );
    assert_eq!(ctx.submits() - subs, 1, "one submit per training step");
    assert_eq!(ctx.buffers_created(), bufs, "a warm step creates no buffer");
    let s = t.train_minibatch(&feed, true).unwrap().unwrap();
    assert!(s.loss.is_finite() && s.metric.is_some());
    assert_eq!(
        ctx.buffers_created(),
        bufs,
        "reading the loss creates no buffer either"
    );
}

#[test]
fn intermediate_buffers_are_reused() {
    let ctx = ctx();
    let g = Graph::new();
    let x = g.input("x", &[64]).unwrap();
    let mut h = x;
    for _ in 0..20 {
        h = g.tanh(g.scale(h, 0.9).unwrap()).unwrap();
    }
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let xd = rand_vec(10 * 64, 2);
    let out = ex.eval(&[h], &[(x, &xd)]).unwrap();
    let want: Vec<f64> = xd
        .iter()
        .map(|&v| (0..20).fold(v as f64, |a, _| (0.9 * a).tanh()))
        .collect();
    assert_close("tanh chain", &out[0], &want, 1e-4);
    // 40 intermediate values of 10×64 floats, but only two live at once.
    assert_eq!(ex.peak_scratch_bytes(), 2 * 10 * 64 * 4);
}

#[test]
fn batch_size_may_change_between_calls() {
    let ctx = ctx();
    let g = Graph::new();
    let (x, _, z, _) = small_model(&g);
    let mut ex = Executor::new(&ctx, &g).unwrap();
    let w1 = ex.parameter(g.find("w1").unwrap()).unwrap();
    let w2 = ex.parameter(g.find("w2").unwrap()).unwrap();
    for n in [25, 7, 1, 25] {
        let xd = rand_vec(n * 3, n as u64);
        let out = ex.eval(&[z], &[(x, &xd)]).unwrap().remove(0);
        let h: Vec<f64> = matmul_ref(&to64(&xd), &[n, 3], &to64(&w1), &[3, 8], false, false)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let want = matmul_ref(&h, &[n, 8], &to64(&w2), &[8, 4], false, false);
        assert_close(&format!("batch {n}"), &out, &want, 1e-4);
    }
}

/// Squared error of x·w against t, w: [3, 1] starting at 0.5, trained by `learner`:
/// (trainer, x, t, w).
fn regression(ctx: &wgrad::Context, learner: wgrad::Learner) -> (Trainer, NodeId, NodeId, NodeId) {
    let g = Graph::new();
    let x = g.input("x", &[3]).unwrap();
    let t = g.input("t", &[1]).unwrap();
    let w = g.parameter("w", &[3, 1], Init::Const(0.5)).unwrap();
    let d = g.sub(g.matmul(x, w).unwrap(), t).unwrap();
    let loss = g.mul(d, d).unwrap();
    (Trainer::new(ctx, &g, loss, None, learner).unwrap(), x, t, w)
}

#[test]
fn sgd_and_momentum_match_a_host_reference() {
    // Minimise mean((x·w - t)²) over a fixed batch; compare each step's weights with a
    // plain-Rust f64 implementation of the same updates.
    for momentum in [0.0f32, 0.9] {
        let ctx = ctx();
        let learner = Sgd::new(0.05).momentum(momentum).weight_decay(0.01);
        let (mut tr, x, t, w) = regression(&ctx, learner);
        let xd = rand_vec(4 * 3, 3);
        let td = rand_vec(4, 4);
        let mut wr = [0.5f64; 3];
        let mut v = [0.0f64; 3];
        for step in 0..5 {
            let s = tr
                .train_minibatch(&[(x, &xd), (t, &td)], true)
                .unwrap()
                .unwrap();
            let mut grad = [0.0f64; 3];
            let mut lref = 0.0;
            for r in 0..4 {
                let e: f64 =
                    (0..3).map(|k| xd[r * 3 + k] as f64 * wr[k]).sum::<f64>() - td[r] as f64;
                lref += e * e / 4.0;
                for k in 0..3 {
                    grad[k] += 2.0 * e * xd[r * 3 + k] as f64 / 4.0;
                }
            }
            assert!(
                (s.loss as f64 - lref).abs() < 1e-5,
                "step {step}: loss {} vs {lref}",
                s.loss
            );
            for k in 0..3 {
                let gk = grad[k] + 0.01 * wr[k];
                v[k] = momentum as f64 * v[k] + gk;
                wr[k] -= 0.05 * if momentum != 0.0 { v[k] } else { gk };
            }
            let got = tr.executor().parameter(w).unwrap();
            assert_close(&format!("momentum {momentum} step {step}"), &got, &wr, 1e-5);
        }
    }
}

#[test]
fn all_parameters_update_in_one_dispatch_even_with_shared_gradients() {
    // Parameters live side by side in one arena and are updated by one dispatch. Here a and
    // b receive the very same gradient node (a + b), and q's gradient is a reduction of the
    // gradient of a + b + q: both need the gradient arena to stay consistent.
    let ctx = ctx();
    let g = Graph::new();
    let x = g.input("x", &[4]).unwrap();
    let a = g.parameter("a", &[4], Init::Const(0.5)).unwrap();
    let b = g.parameter("b", &[4], Init::Const(-0.25)).unwrap();
    let q = g.parameter("q", &[1], Init::Const(0.2)).unwrap();
    let t = g.add(g.add(a, b).unwrap(), q).unwrap();
    let loss = g.reduce_sum(g.mul(t, x).unwrap(), &[-1]).unwrap();
    let mut tr = Trainer::new(&ctx, &g, loss, None, Sgd::new(0.1)).unwrap();
    let xd = rand_vec(3 * 4, 17);
    let mut want = ([0.5f64; 4], [-0.25f64; 4], 0.2f64);
    for step in 0..3 {
        tr.train_minibatch(&[(x, &xd)], false).unwrap();
        // dL/dt_j is the batch mean of x[·, j].
        let m: Vec<f64> = (0..4)
            .map(|j| (0..3).map(|n| xd[n * 4 + j] as f64).sum::<f64>() / 3.0)
            .collect();
        for j in 0..4 {
            want.0[j] -= 0.1 * m[j];
            want.1[j] -= 0.1 * m[j];
        }
        want.2 -= 0.1 * m.iter().sum::<f64>();
        let ex = tr.executor();
        assert_close(
            &format!("a step {step}"),
            &ex.parameter(a).unwrap(),
            &want.0,
            1e-5,
        );
        assert_close(
            &format!("b step {step}"),
            &ex.parameter(b).unwrap(),
            &want.1,
            1e-5,
        );
        assert_close(
            &format!("q step {step}"),
            &ex.parameter(q).unwrap(),
            &[want.2],
            1e-5,
        );
    }
    let plan = tr.executor().plan_summary(&[], &[(x, &xd)], true).unwrap();
    let updates = plan.count(|d| matches!(d.role, wgrad::Role::Update { parameters: 3 }));
    assert_eq!(updates, 1, "{plan}");
    // The profile times the same dispatches.
    let profile = tr.executor().profile(&[], &[(x, &xd)], true).unwrap();
    assert_eq!(profile.len(), plan.len(), "{profile:?}");
}

#[test]
fn pipelined_steps_report_the_same_losses_one_step_late() {
    let ctx = ctx();
    let (mut plain, x, t, _) = regression(&ctx, Sgd::new(0.05).momentum(0.9));
    // A second, identical graph: its own ids (ids of the first are errors there).
    let (mut piped, px, pt, _) = regression(&ctx, Sgd::new(0.05).momentum(0.9));
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..6)
        .map(|k| (rand_vec(4 * 3, 40 + k), rand_vec(4, 50 + k)))
        .collect();
    let mut want = Vec::new();
    let mut got = Vec::new();
    for (k, (xd, td)) in batches.iter().enumerate() {
        let feed = [(x, &xd[..]), (t, &td[..])];
        want.push(plain.train_minibatch(&feed, true).unwrap().unwrap().loss);
        let pfeed = [(px, &xd[..]), (pt, &td[..])];
        let previous = piped.train_minibatch_pipelined(&pfeed).unwrap();
        assert_eq!(previous.is_none(), k == 0, "step {k}");
        got.extend(previous.map(|s| s.loss));
    }
    got.extend(piped.finish_minibatches().unwrap().map(|s| s.loss));
    assert!(piped.finish_minibatches().unwrap().is_none());
    assert_eq!(got, want);
}
