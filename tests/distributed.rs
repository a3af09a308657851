//! Data-parallel training over MPI (feature `mpi`): two ranks of `mpirun` training on
//! shards of 32 against one process training on the minibatches of 64, step for step, for
//! an MLP and a CNN; `fit` across ranks and resumed by one process; a failing or killed rank
//! ending the job within a bounded time.
//!
//! Each test starts `mpirun -np 2` on this test binary, filtered to `mpi_rank`, which does
//! the work of one rank when `WGRAD_MPI_WORKER` names a model (and passes at once
//! otherwise: it is the ranks' entry point, not a test of its own).
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};
use wgrad::data::{Dataset, MinibatchSource};
use wgrad::distributed::{mpi, Communicator, DataParallelOptions, Shard};
use wgrad::nn::{Conv2d, Dense, Sequential};
use wgrad::{Context, FitOptions, Graph, Learner, NodeId, Shape, Trainer};

const WORKER: &str = "WGRAD_MPI_WORKER";
const OUT: &str = "WGRAD_MPI_OUT";
const FAULT: &str = "WGRAD_MPI_FAULT";
/// Samples of the synthetic dataset: 5 global minibatches of 64 and one of 53, which the
/// ranks share 26 and 27 (so the average must weigh the shards by their samples).
const SAMPLES: usize = 373;
const GLOBAL_BATCH: usize = 64;

/// 28×28 "images" whose label is the brightest of ten vertical bands, plus noise.
fn dataset() -> Dataset {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let class = rng.random_range(0..10usize);
        for _row in 0..28 {
            for col in 0..28 {
                let band = (col * 10 / 28 == class) as u8 as f32;
                images.push(255.0 * (0.6 * band + 0.4 * rng.random::<f32>()));
            }
        }
        labels.extend((0..10).map(|k| (k == class) as u8 as f32));
    }
    Dataset::new()
        .with_stream("images", 784, images)
        .unwrap()
        .with_stream("labels", 10, labels)
        .unwrap()
}

/// The model `kind` (mlp or cnn) on inputs images, labels: (images, labels, loss, error).
fn model(g: &Graph, kind: &str) -> wgrad::Result<(NodeId, NodeId, NodeId, NodeId)> {
    let x = g.input("images", &[784])?;
    let y = g.input("labels", &[10])?;
    let scaled = g.scale(x, 1.0 / 255.0)?;
    let z = match kind {
        "mlp" => Sequential::new()
            .add(Dense::new(48).relu())
            .add(Dense::new(10))
            .build(g, scaled)?,
        "wider" => Sequential::new()
            .add(Dense::new(49).relu())
            .add(Dense::new(10))
            .build(g, scaled)?,
        _ => Sequential::new()
            .add(Conv2d::new(8, (5, 5)).stride(2).same().relu())
            .add(Conv2d::new(16, (5, 5)).stride(2).same().relu())
            .add(Dense::new(10))
            .build(g, g.reshape(scaled, Shape::batched(&[1, 28, 28]))?)?,
    };
    let loss = g.cross_entropy_with_softmax(z, y)?;
    let err = g.classification_error(z, y)?;
    Ok((x, y, loss, err))
}

/// Momentum SGD, with clipping for the MLP (the clip must see the global norm). SGD keeps
/// float rounding at rounding level; Adam would turn the rounding of near-zero gradients
/// into differences of a whole step (lr) and hide real ones.
fn learner(kind: &str) -> Learner {
    match kind {
        "cnn" => Learner::momentum_sgd(0.05, 0.9),
        _ => Learner::momentum_sgd(0.1, 0.9).clip_norm(1.0),
    }
}

/// Trains the steps of epoch 0 on this shard; returns the mean losses.
fn steps(t: &mut Trainer, x: NodeId, y: NodeId, shard: Shard, fault: &str) -> Vec<f32> {
    let data = Arc::new(dataset());
    let source = MinibatchSource::sharded(data, GLOBAL_BATCH, Some(3), 0, 1, shard).unwrap();
    let mut losses = Vec::new();
    for (k, mb) in source.enumerate() {
        if shard.rank == 1 && k == 2 {
            match fault {
                "panic" => panic!("injected failure on rank 1 at step {k}"),
                "kill" => {
                    let pid = std::process::id().to_string();
                    let _ = Command::new("kill").args(["-9", &pid]).status();
                }
                _ => {}
            }
        }
        let feed = [(x, &mb.streams[0][..]), (y, &mb.streams[1][..])];
        losses.push(t.train_minibatch(&feed, true).unwrap().unwrap().loss);
    }
    losses
}

fn state_lines(t: &mut Trainer) -> String {
    let mut s = String::new();
    for (name, _, v) in t.executor().export_state().unwrap() {
        let vals: Vec<String> = v.iter().map(|x| x.to_bits().to_string()).collect();
        s += &format!("{name} {}\n", vals.join(" "));
    }
    s
}

fn fit_options(out: &Path, epochs: usize, batch: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch,
        shuffle_seed: Some(5),
        progress: false,
        print_epochs: true,
        checkpoint: Some(out.join("fit.safetensors")),
        resume: true,
        metrics_csv: Some(out.join("fit.csv")),
        ..Default::default()
    }
}

/// One rank's work under `mpirun`; passes at once when not started by a test below.
#[test]
fn mpi_rank() {
    let Ok(kind) = std::env::var(WORKER) else {
        return;
    };
    let out = PathBuf::from(std::env::var(OUT).unwrap());
    let fault = std::env::var(FAULT).unwrap_or_default();
    mpi::run(|world| {
        let rank = world.rank();
        let ctx = Context::new()?;
        if fault == "kill-in-fit" {
            return killed_in_fit(&ctx, world, &out);
        }
        // Different seeds on purpose: rank 0's initial parameters must reach rank 1.
        let g = Graph::with_seed(1 + rank as u64);
        let kind: &str = if fault == "model" && rank == 1 {
            "wider"
        } else {
            &kind
        };
        let (x, y, loss, err) = model(&g, kind)?;
        // Buckets of at most 4,096 floats: 2 for the MLP, 3 for the CNN. The CNN's are
        // all-reduced while the backward pass runs; the MLP's after it.
        let options = DataParallelOptions {
            check_every: 1,
            bucket_floats: 4096,
            overlap: kind == "cnn",
        };
        let mut t = Trainer::data_parallel_with(
            &ctx,
            &g,
            loss,
            Some(err),
            learner(kind),
            Box::new(world),
            options,
        )?;
        let shard = t.shard();
        assert_eq!(shard.ranks, 2);
        let losses = steps(&mut t, x, y, shard, &fault);
        let timing = t.exchange_timing().unwrap();
        assert_eq!(timing.buckets, if kind == "cnn" { 3 } else { 2 });
        let line: Vec<String> = losses.iter().map(|l| l.to_string()).collect();
        let mut text = format!("losses {}\n", line.join(" "));
        text += &state_lines(&mut t);
        std::fs::write(out.join(format!("rank{rank}.txt")), text).unwrap();
        eprintln!(
            "rank {rank}: {} steps, exchange {:?} (all-reduce {:?}), update {:?}, {} floats",
            timing.steps, timing.exchange, timing.all_reduce, timing.update, timing.floats_per_step
        );
        // One epoch of fit on a fresh trainer: 32 per rank, checkpoint and CSV by rank 0.
        let g = Graph::with_seed(1);
        let (x, y, loss, err) = model(&g, kind)?;
        let mut t = Trainer::data_parallel(&ctx, &g, loss, Some(err), learner(kind), world)?;
        let data = dataset();
        let inputs = [("images", x), ("labels", y)];
        let records = t.fit(&data, Some(&data), &inputs, &fit_options(&out, 1, 32))?;
        let r = records[0];
        std::fs::write(
            out.join(format!("fit{rank}.txt")),
            format!("{} {} {}", r.train_loss, r.test_loss, r.test_metric),
        )
        .unwrap();
        Ok(())
    })
    .unwrap();
}

/// `fit` for 3 epochs with a checkpoint; rank 1 kills itself (SIGKILL) as soon as rank 0
/// has written the first epoch's checkpoint.
fn killed_in_fit(ctx: &Context, world: mpi::MpiWorld, out: &Path) -> wgrad::Result<()> {
    let checkpoint = out.join("fit.safetensors");
    if world.rank() == 1 {
        let watched = checkpoint.clone();
        std::thread::spawn(move || loop {
            if watched.exists() {
                let pid = std::process::id().to_string();
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
            std::thread::sleep(Duration::from_millis(5));
        });
    }
    let g = Graph::with_seed(1);
    let (x, y, loss, err) = model(&g, "mlp")?;
    let mut t = Trainer::data_parallel(ctx, &g, loss, Some(err), learner("mlp"), world)?;
    let inputs = [("images", x), ("labels", y)];
    let data = dataset();
    t.fit(&data, None, &inputs, &fit_options(out, 3, 32))?;
    std::fs::write(out.join("rank0.txt"), "finished").unwrap();
    Ok(())
}

/// Runs `mpirun -np 2` on this binary's `mpi_rank` for `kind`; returns whether it
/// succeeded, its stderr and how long it took. Kills it after `limit`.
fn mpirun(kind: &str, fault: &str, out: &Path, limit: Duration) -> (bool, String, Duration) {
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let mut child = Command::new("mpirun")
        .args(["-np", "2", "--oversubscribe", "--allow-run-as-root"])
        .arg(exe)
        .args(["mpi_rank", "--exact", "--nocapture", "--test-threads=1"])
        // Containers often forbid the cross-memory attach of OpenMPI's shared-memory
        // transport; copying through the shared segment works everywhere.
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env(WORKER, kind)
        .env(OUT, out)
        .env(FAULT, fault)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (OpenMPI: apt-get install openmpi-bin) must be on the PATH");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = reader.join().unwrap();
    eprintln!(
        "mpirun {kind} {fault}: {status:?} after {:?}\n{err}",
        t0.elapsed()
    );
    (status.is_some_and(|s| s.success()), err, t0.elapsed())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrad-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn parse_rank(path: &Path) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let losses = lines.next().unwrap().split(' ').skip(1);
    let losses = losses.map(|v| v.parse().unwrap()).collect();
    let state = lines
        .map(|l| {
            let mut parts = l.split(' ');
            let name = parts.next().unwrap().to_string();
            let v = parts.map(|b| f32::from_bits(b.parse().unwrap())).collect();
            (name, v)
        })
        .collect();
    (losses, state)
}

/// The same steps in one process on the minibatches of 64: (losses, state).
fn one_process(kind: &str) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let ctx = Context::new().unwrap();
    let g = Graph::with_seed(1);
    let (x, y, loss, err) = model(&g, kind).unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), learner(kind)).unwrap();
    let losses = steps(&mut t, x, y, Shard::WHOLE, "");
    let state = t.executor().export_state().unwrap();
    (losses, state.into_iter().map(|(n, _, v)| (n, v)).collect())
}

fn two_ranks_train_like_one(kind: &str) {
    let out = scratch(kind);
    let (ok, err, _) = mpirun(kind, "", &out, Duration::from_secs(600));
    assert!(ok, "mpirun failed:\n{err}");
    let (l0, s0) = parse_rank(&out.join("rank0.txt"));
    let (l1, s1) = parse_rank(&out.join("rank1.txt"));
    assert_eq!(l0, l1, "every rank reports the whole minibatch's loss");
    assert_eq!(s0, s1, "the ranks' parameters are identical, bit for bit");
    let (l, s) = one_process(kind);
    assert_eq!(l.len(), SAMPLES.div_ceil(GLOBAL_BATCH));
    assert_eq!(l0.len(), l.len());
    for (k, (a, b)) in l0.iter().zip(&l).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "step {k}: loss {a} on 2 ranks, {b} on 1"
        );
    }
    assert!(l[l.len() - 1] < l[0], "the model learns: {l:?}");
    let mut worst = 0f32;
    for ((n0, v0), (n, v)) in s0.iter().zip(&s) {
        assert_eq!(n0, n);
        for (a, b) in v0.iter().zip(v) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
    }
    eprintln!("{kind}: losses {l0:?} (2 ranks) {l:?} (1); worst parameter difference {worst:e}");
    assert!(worst < 1e-4, "parameters after the steps differ by {worst}");
    // fit: 2 ranks of 32 for one epoch equal 1 process of 64; the checkpoint rank 0 wrote
    // resumes in 1 process for a second epoch like an uninterrupted 2-epoch run.
    let fit2: Vec<f32> = std::fs::read_to_string(out.join("fit0.txt"))
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let fit2b = std::fs::read_to_string(out.join("fit1.txt")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("fit0.txt")).unwrap(),
        fit2b
    );
    let ctx = Context::new().unwrap();
    let data = dataset();
    let run = |dir: &Path, epochs: usize| {
        let g = Graph::with_seed(1);
        let (x, y, loss, err) = model(&g, kind).unwrap();
        let mut t = Trainer::new(&ctx, &g, loss, Some(err), learner(kind)).unwrap();
        let inputs = [("images", x), ("labels", y)];
        t.fit(&data, Some(&data), &inputs, &fit_options(dir, epochs, 64))
            .unwrap()
    };
    let whole = run(&scratch(&format!("{kind}-whole")), 2);
    let r = whole[0];
    for (a, b) in fit2.iter().zip([r.train_loss, r.test_loss, r.test_metric]) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "fit epoch 1: {fit2:?} on 2 ranks, {r:?} on 1"
        );
    }
    let resumed = run(&out, 2);
    assert_eq!(resumed.len(), 2);
    let (a, b) = (resumed[1], whole[1]);
    assert!(
        (a.train_loss - b.train_loss).abs() <= 1e-4 * b.train_loss.abs().max(1.0),
        "{a:?} against {b:?}"
    );
    assert!(
        (a.test_loss - b.test_loss).abs() <= 1e-4 * b.test_loss.abs().max(1.0),
        "{a:?} against {b:?}"
    );
}

#[test]
fn two_ranks_train_the_mlp_like_one_process() {
    two_ranks_train_like_one("mlp");
}

#[test]
fn two_ranks_train_the_cnn_like_one_process() {
    two_ranks_train_like_one("cnn");
}

/// A rank that panics, is killed, or built another model ends the whole job with an
/// error, well within the limit, instead of leaving the other waiting in an all-reduce.
#[test]
fn a_failing_rank_ends_the_job() {
    for (fault, said) in [
        ("panic", "injected failure on rank 1"),
        ("kill", ""),
        ("model", "the ranks' models differ"),
    ] {
        let out = scratch(&format!("fault-{fault}"));
        let (ok, err, took) = mpirun("mlp", fault, &out, Duration::from_secs(300));
        assert!(!ok, "{fault}: the job must fail");
        assert!(
            took < Duration::from_secs(120),
            "{fault}: the job took {took:?} to end"
        );
        assert!(
            err.contains(said),
            "{fault}: stderr should say {said:?}:\n{err}"
        );
        assert!(
            !out.join("rank0.txt").exists(),
            "{fault}: rank 0 must not finish its steps"
        );
    }
}

/// A rank killed during `fit` ends the job; the checkpoint rank 0 wrote before (atomically)
/// loads in one process and resumes there.
#[test]
fn a_rank_killed_in_fit_leaves_a_loadable_checkpoint() {
    let out = scratch("kill-in-fit");
    let (ok, err, took) = mpirun("mlp", "kill-in-fit", &out, Duration::from_secs(300));
    assert!(!ok, "the job must fail");
    assert!(
        took < Duration::from_secs(120),
        "the job took {took:?} to end"
    );
    assert!(
        !out.join("rank0.txt").exists(),
        "rank 0 must not finish:\n{err}"
    );
    let ctx = Context::new().unwrap();
    let g = Graph::with_seed(7);
    let (x, y, loss, err) = model(&g, "mlp").unwrap();
    let mut t = Trainer::new(&ctx, &g, loss, Some(err), learner("mlp")).unwrap();
    let meta = t.load_checkpoint(&out.join("fit.safetensors")).unwrap();
    let epoch: usize = meta["epoch"].parse().unwrap();
    assert!(
        (1..3).contains(&epoch),
        "the checkpoint is of epoch {epoch}"
    );
    let inputs = [("images", x), ("labels", y)];
    let records = t
        .fit(&dataset(), None, &inputs, &fit_options(&out, 3, 64))
        .unwrap();
    assert_eq!(
        records.len(),
        3,
        "resumed after epoch {epoch} and trained to the end"
    );
}
