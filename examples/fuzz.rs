//! An in-process mutation fuzzer for wgrad's readers: the IDX reader (raw and gzip), the CTF
//! readers (samples and sequences) and the checkpoint loader. Each target starts from a seed
//! corpus of valid inputs and feeds mutations of them (bit flips, interesting bytes, inserted
//! and deleted runs, splices, format tokens); an input passes when it returns `Ok` or `Err`:
//! a panic, an input slower than the time bound, or an allocation over the cap is a failure,
//! reported with the input.
//!
//! ```text
//! cargo run --release --example fuzz -- 1000000          # every target, 1M inputs each
//! cargo run --release --example fuzz -- 1000000 ctf 7    # one target, seed 7
//! ```
//!
//! `tests/fuzz.rs` runs a bounded number of iterations of each target in CI.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wgrad::data::ctf::{CtfReader, Storage};
use wgrad::data::mnist;

/// No single allocation while fuzzing may exceed this.
pub const ALLOCATION_CAP: usize = 256 << 20;
/// No input may take longer than this.
pub const TIME_BOUND: Duration = Duration::from_secs(2);

/// The system allocator, refusing (and recording) any allocation over the cap while armed.
pub struct CappedAlloc;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
            if layout.size() > ALLOCATION_CAP {
                return std::ptr::null_mut();
            }
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// A fuzz target: a name, its seed corpus and the function under test.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Tokens of the format that mutations insert.
    pub tokens: &'static [&'static str],
    /// Whether the input was accepted (`Ok`); rejected inputs are fine too.
    pub run: Box<Check>,
}

/// The function under test: whether it accepted the input.
pub type Check = dyn FnMut(&[u8]) -> bool;

/// What a fuzzing run saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub iterations: u64,
    /// Inputs accepted (`Ok`).
    pub ok: u64,
    /// Inputs rejected with an error.
    pub err: u64,
    pub slowest: Duration,
    pub largest_allocation: usize,
    /// (what went wrong, the input) for each failure.
    pub failures: Vec<(String, Vec<u8>)>,
}

fn idx(dims: &[u32], fill: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    v.extend((0..n).map(|i| fill.wrapping_add(i as u8)));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The IDX reader on raw bytes.
pub fn idx_raw() -> Target {
    Target {
        name: "idx-raw",
        seeds: vec![idx(&[3, 4, 5], 1), idx(&[7], 3), idx(&[2, 28, 28], 0)],
        tokens: &[
            "\u{0}\u{0}\u{8}\u{3}",
            "\u{ff}\u{ff}\u{ff}\u{ff}",
            "\u{0}\u{0}\u{0}\u{0}",
        ],
        run: Box::new(|b| mnist::parse_idx(b, 3).is_ok() | mnist::parse_idx(b, 1).is_ok()),
    }
}

/// The IDX reader on gzip files (mutations of the compressed bytes).
pub fn idx_gzip() -> Target {
    let seeds = vec![
        gzip(&idx(&[3, 4, 5], 1)),
        gzip(&idx(&[9], 2)),
        gzip(&idx(&[1, 1000, 100], 0)),
    ];
    Target {
        name: "idx-gzip",
        seeds,
        tokens: &["\u{1f}\u{8b}\u{8}\u{0}", "\u{0}\u{0}\u{0}\u{0}"],
        run: Box::new(|b| mnist::parse_idx(b, 3).is_ok() | mnist::parse_idx(b, 1).is_ok()),
    }
}

/// The CTF readers, samples and sequences.
pub fn ctf() -> Target {
    let samples = CtfReader::new(&[
        ("features", 3, Storage::Dense),
        ("labels", 4, Storage::Sparse),
    ]);
    let sequences =
        CtfReader::new(&[("letters", 5, Storage::Sparse), ("x", 2, Storage::Dense)]).max_errors(3);
    let seeds = [
        "|features 1 2 3 |labels 2:1\n|labels 0:0.5 3:1 |features -1e-3 4.5 6 |# c\n",
        "7 |features 0 0 1 |labels 1:1\r\n8 |features 1 1 1 |labels 3:2\n",
        "w1 |letters 3:1 |x 0.5 -1\nw1 |letters 0:1\nw2 |letters 4:2.5 |x 1 2\n",
        "|# only a comment\n\n|x 1 2 |letters 1:1\n",
    ];
    Target {
        name: "ctf",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        tokens: &[
            "|",
            ":",
            " ",
            "\n",
            "|#",
            "nan",
            "inf",
            "1e39",
            "-",
            "99999999999",
            "4294967296:1",
            "|labels",
            "|x",
            "w1 ",
        ],
        run: Box::new(move |b| {
            let text = String::from_utf8_lossy(b);
            samples.read_str(&text).is_ok() | sequences.read_sequences_str(&text).is_ok()
        }),
    }
}

/// The checkpoint loader of a small trainer (the device is only written for a file that
/// passes every check).
pub fn checkpoint() -> Target {
    use wgrad::nn::{Dense, Sequential};
    let ctx = wgrad::Context::new().expect("the checkpoint target needs a wgpu adapter");
    println!("checkpoint target on {}", ctx.adapter());
    let g = wgrad::Graph::with_seed(1);
    let x = g.input("x", &[3]).unwrap();
    let y = g.input("y", &[2]).unwrap();
    let z = Sequential::new()
        .add(Dense::new(4).relu())
        .add(Dense::new(2))
        .build(&g, x)
        .unwrap();
    let loss = g.cross_entropy_with_softmax(z, y).unwrap();
    let mut t = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::adam(0.01)).unwrap();
    let dir = std::env::temp_dir().join(format!("wgrad-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.safetensors");
    t.save_checkpoint(&path, &Default::default()).unwrap();
    let seed = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Target {
        name: "checkpoint",
        seeds: vec![seed],
        tokens: &[
            "\"F32\"",
            "\"F16\"",
            "[",
            "]",
            "{",
            "}",
            "\"shape\"",
            "\"data_offsets\"",
            "9999999999",
            "/learner0",
            "wgrad.step",
        ],
        run: Box::new(move |b| t.load_checkpoint_bytes(b, "fuzz input").is_ok()),
    }
}

/// Every target, in order.
pub fn all() -> Vec<fn() -> Target> {
    vec![idx_raw, idx_gzip, ctf, checkpoint]
}

/// One mutation of `input` (sometimes spliced with `other`).
fn mutate(r: &mut StdRng, input: &[u8], other: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..r.random_range(1..=4) {
        let at = |r: &mut StdRng, v: &Vec<u8>| r.random_range(0..=v.len());
        match r.random_range(0..8) {
            0 if !v.is_empty() => {
                let i = r.random_range(0..v.len());
                v[i] ^= 1 << r.random_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = r.random_range(0..v.len());
                v[i] = [0u8, 0xff, 0x7f, 0x80, 1, b'0', b'9', b'.'][r.random_range(0..8)];
            }
            2 if !v.is_empty() => {
                let i = r.random_range(0..v.len());
                let n = r.random_range(1..=16.min(v.len() - i));
                v.drain(i..i + n);
            }
            3 => {
                let i = at(r, &v);
                let tok = tokens[r.random_range(0..tokens.len())].as_bytes();
                v.splice(i..i, tok.iter().copied());
            }
            4 if !v.is_empty() => {
                let i = r.random_range(0..v.len());
                let n = r.random_range(1..=32.min(v.len() - i));
                let chunk = v[i..i + n].to_vec();
                let j = at(r, &v);
                v.splice(j..j, chunk);
            }
            5 if !other.is_empty() => {
                let i = at(r, &v);
                let j = r.random_range(0..other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            6 => {
                let i = at(r, &v);
                v.truncate(i);
            }
            _ => {
                let i = at(r, &v);
                let b: u8 = r.random();
                v.insert(i, b);
            }
        }
    }
    v
}

/// Runs `iterations` inputs of `target` from `seed`: the seeds first, then mutations of
/// the corpus (one input in 64 joins it, up to 256).
pub fn run(mut target: Target, iterations: u64, seed: u64) -> Stats {
    let mut r = StdRng::seed_from_u64(seed);
    let mut corpus = target.seeds.clone();
    let mut stats = Stats::default();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    LARGEST.store(0, Ordering::Relaxed);
    for k in 0..iterations {
        let input = match (k as usize) < target.seeds.len() {
            true => target.seeds[k as usize].clone(),
            false => {
                let a = &corpus[r.random_range(0..corpus.len())];
                let b = &corpus[r.random_range(0..corpus.len())];
                mutate(&mut r, a, b, target.tokens)
            }
        };
        let t0 = Instant::now();
        ARMED.store(true, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        ARMED.store(false, Ordering::Relaxed);
        let took = t0.elapsed();
        stats.iterations += 1;
        stats.slowest = stats.slowest.max(took);
        match outcome {
            Ok(true) => stats.ok += 1,
            Ok(false) => stats.err += 1,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                stats
                    .failures
                    .push((format!("panic: {msg}"), input.clone()));
            }
        }
        if took > TIME_BOUND {
            stats
                .failures
                .push((format!("took {took:?}"), input.clone()));
        }
        if corpus.len() < 256 && r.random_range(0..64) == 0 {
            corpus.push(input);
        }
    }
    stats.largest_allocation = LARGEST.load(Ordering::Relaxed);
    if stats.largest_allocation > ALLOCATION_CAP {
        stats.failures.push((
            format!("an allocation of {} bytes", stats.largest_allocation),
            Vec::new(),
        ));
    }
    std::panic::set_hook(quiet);
    stats
}

/// Fuzzes wgrad's readers with mutated inputs.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// Inputs per target.
    #[arg(default_value_t = 100_000)]
    iterations: u64,
    /// Only this target: idx-raw, idx-gzip, ctf or checkpoint.
    target: Option<String>,
    /// Seed of the mutations.
    #[arg(default_value_t = 1)]
    seed: u64,
}

#[allow(dead_code)]
fn main() {
    let args = <Args as clap::Parser>::parse();
    let (iterations, only, seed) = (args.iterations, args.target, args.seed);
    let mut failed = false;
    for make in all() {
        let target = make();
        if only.as_deref().is_some_and(|o| o != target.name) {
            continue;
        }
        let name = target.name;
        let t0 = Instant::now();
        let s = run(target, iterations, seed);
        println!(
            "{name}: {} inputs in {:.1} s, slowest {:?}, largest allocation {} bytes, {} failures",
            s.iterations,
            t0.elapsed().as_secs_f64(),
            s.slowest,
            s.largest_allocation,
            s.failures.len()
        );
        for (what, input) in s.failures.iter().take(5) {
            println!("  {what}: {:02x?}", &input[..input.len().min(256)]);
        }
        failed |= !s.failures.is_empty();
    }
    if failed {
        std::process::exit(1);
    }
}
