//! CNTK 204: grapheme → phoneme on the CMU Pronouncing Dictionary. The letters of a word are
//! one sequence axis and its phonemes another. Encoder: letter embedding 64 → bidirectional
//! LSTM 128 per direction. Decoder: LSTM 256 fed the previous phoneme (teacher forcing in
//! training), started from tanh(W[h_fwd_last; h_bwd_first]); additive attention over the
//! encoder states using the previous decoder state; logits from [state; context]. Adam lr
//! 1e-3, batch 128 words, 6 epochs; greedy decoding or beam search on the test split (every
//! 20th word).
//!
//! ```text
//! cargo run --release --example g2p -- --epochs 6
//! ```
//! `--help` lists the options: the dictionary, epochs, seed, `--limit N` (a subset), `--beam K`
//! (1: greedy decoding; K > 1: beam search of width K), `--write-ctf DIR` and `--ctf DIR`
//! (write the prepared splits as CTF sequences, or read them from such files), and
//! `--checkpoint FILE` (resume from it and save it after every epoch).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use wgrad::data::cmudict::{self, Pronunciation, LETTERS, MAX_LETTERS, PHONEMES};
use wgrad::data::ctf::{CtfReader, Storage, StreamSpec};
use wgrad::data::ctf_sequences::{write_sequences, CtfSequence};
use wgrad::data::SequenceBatch;
use wgrad::edit_distance::error_rates;
use wgrad::graph::SequenceAxis;
use wgrad::nn::{Activation, AdditiveAttention, Bidirectional, Dense, Embedding, Layer, Lstm};
use wgrad::{Context, Graph, Learner, NodeId, Trainer};

/// The decoder's start token (an input) and end token (an output class): one past the
/// phonemes.
pub const START: usize = PHONEMES.len();
/// The end-of-word class.
pub const END: usize = PHONEMES.len();

/// Sizes of the model.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Letter and phoneme embedding width.
    pub embed: usize,
    /// Encoder LSTM units per direction.
    pub encoder: usize,
    /// Decoder LSTM units.
    pub decoder: usize,
    /// Attention projection width.
    pub attention: usize,
    /// Words per minibatch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Padded decoder steps (the longest pronunciation + 1).
    pub steps: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embed: 64,
            encoder: 128,
            decoder: 256,
            attention: 128,
            batch: 128,
            lr: 1e-3,
            steps: 21,
        }
    }
}

/// The graph and its named nodes.
pub struct Model {
    /// The graph.
    pub g: Graph,
    /// Letter indices `[batch, seq]`.
    pub letters: NodeId,
    /// The decoder's input tokens `[batch, seq1]`: START, then the phonemes.
    pub decoder_in: NodeId,
    /// The decoder's targets `[batch, seq1]`: the phonemes, then END.
    pub target: NodeId,
    /// The phonemes' axis.
    pub phones: SequenceAxis,
    /// Per-token cross-entropy `[batch, seq1]`.
    pub loss: NodeId,
    /// The most likely class at each decoder step `[batch, seq1]`.
    pub prediction: NodeId,
    /// Log-probabilities of the classes at each decoder step `[batch, seq1, classes]`.
    pub log_probs: NodeId,
}

/// Builds the encoder-decoder of `cfg`.
pub fn model(cfg: &Config, seed: u64) -> wgrad::Result<Model> {
    let g = Graph::with_seed(seed);
    let letters = g.input_sequence("letters", &[])?;
    let x = Embedding::new(LETTERS.len(), cfg.embed).build(&g, "letter_embedding", letters)?;
    let enc = Bidirectional(Lstm::new(cfg.encoder)).build(&g, "encoder", x)?;
    let e = cfg.encoder;
    let fwd_last = g.slice(g.sequence_last(enc)?, -1, 0, e)?;
    let bwd_first = g.slice(g.sequence_first(enc)?, -1, e, 2 * e)?;
    let s0 = Dense::new(cfg.decoder).activation(Activation::Tanh).build(
        &g,
        "bridge",
        g.concat(fwd_last, bwd_first, -1)?,
    )?;
    let phones = g.sequence_axis("phoneme lengths")?;
    let decoder_in = g.input_sequence_on(phones, "decoder input", &[])?;
    let target = g.input_sequence_on(phones, "target", &[])?;
    let y = Embedding::new(START + 1, cfg.embed).build(&g, "phoneme_embedding", decoder_in)?;
    let s = Lstm::new(cfg.decoder).build_from(&g, "decoder", y, s0, g.scalar(0.0))?;
    let previous = g.past_value(s, s0)?;
    let attention = AdditiveAttention { dim: cfg.attention };
    let context = attention.apply(&g, "attention", previous, enc)?;
    let z = Dense::new(END + 1).build(&g, "output", g.concat(s, context, -1)?)?;
    let loss = g.cross_entropy_with_softmax_indices(z, target)?;
    let prediction = g.argmax(z, -1)?;
    let log_probs = g.log_softmax(z, -1)?;
    Ok(Model {
        g,
        letters,
        decoder_in,
        target,
        phones,
        loss,
        prediction,
        log_probs,
    })
}

/// Packed minibatch data: letters, decoder inputs and targets.
pub struct Batch {
    letters: SequenceBatch,
    decoder_in: SequenceBatch,
    target: SequenceBatch,
}

/// `n` rounded up to a multiple of 4, so that minibatches share a few plans.
fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn longest(v: &[Vec<f32>]) -> usize {
    v.iter().map(|s| s.len()).max().unwrap_or(1)
}

/// Packs `words` for teacher forcing: the letters padded to their longest (rounded up to a
/// multiple of 4), the decoder to `steps`.
pub fn pack(words: &[&Pronunciation], steps: usize) -> wgrad::Result<Batch> {
    let f = |v: &[u8]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let letters: Vec<Vec<f32>> = words.iter().map(|w| f(&w.letters)).collect();
    let inputs: Vec<Vec<f32>> = words
        .iter()
        .map(|w| {
            std::iter::once(START as f32)
                .chain(f(&w.phonemes))
                .collect()
        })
        .collect();
    let targets: Vec<Vec<f32>> = words
        .iter()
        .map(|w| f(&w.phonemes).into_iter().chain([END as f32]).collect())
        .collect();
    let pk = |v: &[Vec<f32>], n: usize| {
        let r: Vec<&[f32]> = v.iter().map(|s| &s[..]).collect();
        SequenceBatch::pack_to(&r, 1, n)
    };
    Ok(Batch {
        letters: pk(&letters, padded(longest(&letters)).min(MAX_LETTERS))?,
        decoder_in: pk(&inputs, steps)?,
        target: pk(&targets, steps)?,
    })
}

impl Model {
    /// The feed of a packed minibatch (the targets too when `with_target`).
    pub fn feed<'a>(&self, b: &'a Batch, with_target: bool) -> Vec<(NodeId, &'a [f32])> {
        let mut feed = b
            .letters
            .feed(self.letters, self.g.sequence_lengths())
            .to_vec();
        let phone_lengths = self.g.axis_lengths(self.phones);
        feed.extend(b.decoder_in.feed(self.decoder_in, phone_lengths));
        if with_target {
            feed.push((self.target, b.target.values()));
        }
        feed
    }
}

/// Greedy decoding of `words`, batched: the decoder is fed its own most likely phoneme,
/// one step more per call, until every word has produced END or `steps` phonemes.
pub fn greedy(
    m: &Model,
    trainer: &mut Trainer,
    words: &[&Pronunciation],
    steps: usize,
) -> wgrad::Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); words.len()];
    let mut done = vec![false; words.len()];
    let mut batch = pack(words, steps)?;
    for t in 1..=steps {
        // Every decoder input holds START and the phonemes so far (t steps).
        let prefixes: Vec<Vec<f32>> = out
            .iter()
            .map(|o| {
                let mut p = vec![START as f32];
                p.extend(o.iter().map(|&x| x as f32));
                p.resize(t, END as f32);
                p
            })
            .collect();
        let r: Vec<&[f32]> = prefixes.iter().map(|s| &s[..]).collect();
        batch.decoder_in = SequenceBatch::pack_to(&r, 1, steps)?;
        let pred = trainer
            .eval(&[m.prediction], &m.feed(&batch, false))?
            .remove(0);
        for (k, o) in out.iter_mut().enumerate() {
            let class = pred[k * steps + t - 1] as usize;
            if done[k] {
                continue;
            }
            if class == END || o.len() + 1 >= steps {
                done[k] = true;
            } else {
                o.push(class as u8);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    Ok(out)
}

/// A partial pronunciation in a beam.
#[derive(Clone, Debug)]
struct Hypothesis {
    phonemes: Vec<u8>,
    log_prob: f64,
    done: bool,
}

/// The decoder inputs of every beam row at step `t`: START and the hypothesis so far.
fn beam_inputs(beams: &[Vec<Hypothesis>], width: usize, t: usize) -> Vec<Vec<f32>> {
    (0..beams.len() * width)
        .map(|r| {
            let word = &beams[r / width];
            let h = word.get(r % width).unwrap_or(&word[0]);
            let mut p = vec![START as f32];
            p.extend(h.phonemes.iter().map(|&x| x as f32));
            p.resize(t, END as f32);
            p
        })
        .collect()
}

/// Beam search of width `width`, batched: each word keeps its `width` most likely
/// hypotheses, each extended by every class at each step; a hypothesis ends at END or at
/// `steps` phonemes, as in [`greedy`] (which width 1 equals).
pub fn beam(
    m: &Model,
    trainer: &mut Trainer,
    words: &[&Pronunciation],
    steps: usize,
    width: usize,
) -> wgrad::Result<Vec<Vec<u8>>> {
    let classes = END + 1;
    let start = Hypothesis {
        phonemes: Vec::new(),
        log_prob: 0.0,
        done: false,
    };
    let mut beams: Vec<Vec<Hypothesis>> = vec![vec![start]; words.len()];
    let rows: Vec<&Pronunciation> = words
        .iter()
        .flat_map(|w| std::iter::repeat_n(*w, width))
        .collect();
    let mut batch = pack(&rows, steps)?;
    for t in 1..=steps {
        let inputs = beam_inputs(&beams, width, t);
        let r: Vec<&[f32]> = inputs.iter().map(|s| &s[..]).collect();
        batch.decoder_in = SequenceBatch::pack_to(&r, 1, steps)?;
        let lp = trainer
            .eval(&[m.log_probs], &m.feed(&batch, false))?
            .remove(0);
        for (w, word) in beams.iter_mut().enumerate() {
            let mut next = Vec::new();
            for (b, h) in word.iter().enumerate() {
                if h.done {
                    next.push(h.clone());
                    continue;
                }
                let at = ((w * width + b) * steps + t - 1) * classes;
                for (c, &l) in lp[at..at + classes].iter().enumerate() {
                    let mut e = h.clone();
                    e.log_prob += l as f64;
                    if c == END || h.phonemes.len() + 1 >= steps {
                        e.done = true;
                    } else {
                        e.phonemes.push(c as u8);
                    }
                    next.push(e);
                }
            }
            // Stable: among equal scores the lower class stays first, as argmax keeps it.
            next.sort_by(|a, b| b.log_prob.total_cmp(&a.log_prob));
            next.truncate(width);
            *word = next;
        }
        if beams.iter().all(|w| w.iter().all(|h| h.done)) {
            break;
        }
    }
    Ok(beams.into_iter().map(|w| w[0].phonemes.clone()).collect())
}

/// The CTF streams of a word: its letters and its phonemes, one-hot as sparse indices.
pub fn ctf_streams() -> Vec<StreamSpec> {
    vec![
        StreamSpec {
            name: "letters".into(),
            dim: LETTERS.len(),
            storage: Storage::Sparse,
        },
        StreamSpec {
            name: "phonemes".into(),
            dim: PHONEMES.len(),
            storage: Storage::Sparse,
        },
    ]
}

/// Writes `words` as CTF sequences (id: the word's number; one-hot letters and phonemes).
pub fn write_ctf(path: &std::path::Path, words: &[Pronunciation]) -> wgrad::Result<()> {
    let one_hot = |v: &[u8], dim: usize| {
        let mut out = vec![0.0; v.len() * dim];
        for (t, &i) in v.iter().enumerate() {
            out[t * dim + i as usize] = 1.0;
        }
        out
    };
    let seqs: Vec<CtfSequence> = words
        .iter()
        .enumerate()
        .map(|(k, w)| CtfSequence {
            id: k.to_string(),
            streams: vec![
                one_hot(&w.letters, LETTERS.len()),
                one_hot(&w.phonemes, PHONEMES.len()),
            ],
        })
        .collect();
    write_sequences(path, &ctf_streams(), &seqs)
}

/// Reads words written by [`write_ctf`]; every step must be one-hot.
pub fn read_ctf(path: &std::path::Path) -> wgrad::Result<Vec<Pronunciation>> {
    let specs = ctf_streams();
    let reader = CtfReader::new(&[
        ("letters", specs[0].dim, Storage::Sparse),
        ("phonemes", specs[1].dim, Storage::Sparse),
    ]);
    let (seqs, _) = reader.read_sequences_file(path)?;
    let indices = |v: &[f32], dim: usize, id: &str| -> wgrad::Result<Vec<u8>> {
        v.chunks(dim)
            .map(|step| match step.iter().position(|&x| x == 1.0) {
                Some(i) if step.iter().filter(|&&x| x != 0.0).count() == 1 => Ok(i as u8),
                _ => Err(wgrad::Error::Invalid(format!(
                    "{}: sequence {id}: a step that is not one-hot",
                    path.display()
                ))),
            })
            .collect()
    };
    seqs.sequences
        .iter()
        .map(|s| {
            let letters = indices(&s.streams[0], specs[0].dim, &s.id)?;
            let phonemes = indices(&s.streams[1], specs[1].dim, &s.id)?;
            if letters.is_empty() || phonemes.is_empty() {
                return Err(wgrad::Error::Invalid(format!(
                    "{}: sequence {} needs letters and phonemes",
                    path.display(),
                    s.id
                )));
            }
            let word = letters
                .iter()
                .map(|&l| LETTERS.as_bytes()[l as usize] as char);
            Ok(Pronunciation {
                word: word.collect(),
                letters,
                phonemes,
            })
        })
        .collect()
}

/// Trains for `epochs` on `train` and returns the trainer and the mean loss of the last
/// epoch trained (NaN when the checkpoint already holds every epoch).
///
/// With a `checkpoint` path, the run resumes from that file when it exists (its metadata
/// names the epochs done) and rewrites it, atomically, after every epoch. Each epoch's order
/// comes from its own seed, so a resumed run trains as an unbroken one would.
pub fn train(
    ctx: &Context,
    m: &Model,
    cfg: &Config,
    train: &[Pronunciation],
    epochs: usize,
    seed: u64,
    checkpoint: Option<&Path>,
) -> wgrad::Result<(Trainer, f32)> {
    let mut trainer = Trainer::new(ctx, &m.g, m.loss, None, Learner::adam(cfg.lr))?;
    let mut done = 0;
    if let Some(path) = checkpoint.filter(|p| p.exists()) {
        let meta = trainer.load_checkpoint(path)?;
        done = meta
            .get("g2p.epochs")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| {
                wgrad::Error::Invalid(format!("{}: no g2p.epochs in its metadata", path.display()))
            })?;
        println!("resumed from {} after {done} epochs", path.display());
    }
    let mut last = f32::NAN;
    for epoch in done + 1..=epochs {
        // Minibatches of words of about the same length (shuffled, then sorted by length),
        // in a shuffled order: little padding, and a few plans.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((epoch as u64) << 32));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        order.sort_by_key(|&i| train[i].phonemes.len());
        let mut batches: Vec<&[usize]> = order.chunks(cfg.batch).collect();
        batches.shuffle(&mut rng);
        let start = std::time::Instant::now();
        let (mut total, mut n) = (0.0, 0);
        for (k, chunk) in batches.into_iter().enumerate() {
            let words: Vec<&Pronunciation> = chunk.iter().map(|&i| &train[i]).collect();
            let most = words
                .iter()
                .map(|w| w.phonemes.len() + 1)
                .max()
                .unwrap_or(1);
            let b = pack(&words, padded(most).min(cfg.steps))?;
            let read = k % 20 == 0;
            if let Some(stats) = trainer.train_minibatch(&m.feed(&b, true), read)? {
                total += stats.loss;
                n += 1;
            }
        }
        last = total / n.max(1) as f32;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {epoch}: loss {last:.3} (sampled), {:.0} words/s",
            train.len() as f64 / secs
        );
        if let Some(path) = checkpoint {
            let meta = HashMap::from([("g2p.epochs".to_string(), epoch.to_string())]);
            trainer.save_checkpoint(path, &meta)?;
        }
    }
    Ok((trainer, last))
}

/// PER and WER of decoding `test` (greedy at width 1, else beam search), in batches of
/// about `cfg.batch` rows.
pub fn evaluate(
    m: &Model,
    trainer: &mut Trainer,
    cfg: &Config,
    test: &[Pronunciation],
    width: usize,
) -> wgrad::Result<(f64, f64, Vec<Vec<u8>>)> {
    let mut decoded = Vec::new();
    for chunk in test.chunks((cfg.batch / width).max(1)) {
        let words: Vec<&Pronunciation> = chunk.iter().collect();
        decoded.extend(match width {
            1 => greedy(m, trainer, &words, cfg.steps)?,
            _ => beam(m, trainer, &words, cfg.steps, width)?,
        });
    }
    let pairs: Vec<(&[u8], &[u8])> = decoded
        .iter()
        .zip(test)
        .map(|(d, w)| (&d[..], &w.phonemes[..]))
        .collect();
    let r = error_rates(&pairs);
    Ok((r.token, r.sequence, decoded))
}

/// CNTK 204: grapheme → phoneme on the CMU Pronouncing Dictionary.
#[derive(clap::Parser, Debug)]
#[allow(dead_code)]
struct Args {
    /// The dictionary; default `$WGRAD_CMUDICT` or `../shared/data/cmudict/cmudict.dict.gz`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs to train.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Seed of the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Beam width of the decoding (1: greedy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    beam: u64,
    /// Train on the first N words of a shuffled order and test on N/20 (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Also write the prepared splits as CTF sequences, DIR/train.ctf and DIR/test.ctf.
    #[arg(long, value_name = "DIR")]
    write_ctf: Option<PathBuf>,
    /// Read the splits from such files instead of the dictionary.
    #[arg(long, value_name = "DIR")]
    ctf: Option<PathBuf>,
    /// Resume from this checkpoint if it exists, and write it after every epoch (a run
    /// whose checkpoint holds every epoch only decodes, e.g. with another `--beam`).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

#[allow(dead_code)]
fn main() -> wgrad::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let data = args
        .data
        .clone()
        .or_else(|| std::env::var("WGRAD_CMUDICT").ok().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data/cmudict/cmudict.dict.gz"));
    let (epochs, seed, beam) = (args.epochs, args.seed, args.beam as usize);
    let mut dict = match &args.ctf {
        // Train and test splits as CTF sequences (written by --write-ctf).
        Some(dir) => cmudict::CmuDict {
            train: read_ctf(&dir.join("train.ctf"))?,
            test: read_ctf(&dir.join("test.ctf"))?,
        },
        None => cmudict::load(&data)?,
    };
    if let Some(dir) = &args.write_ctf {
        write_ctf(&dir.join("train.ctf"), &dict.train)?;
        write_ctf(&dir.join("test.ctf"), &dict.test)?;
        println!("wrote {}/train.ctf and test.ctf", dir.display());
    }
    if let Some(n) = args.limit {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        dict.train.shuffle(&mut rng);
        dict.test.shuffle(&mut rng);
        dict.train.truncate(n);
        dict.test.truncate((n / 20).max(1));
    }
    let longest = dict
        .train
        .iter()
        .chain(&dict.test)
        .map(|w| w.phonemes.len())
        .max();
    let cfg = Config {
        steps: longest.unwrap_or(1) + 1,
        ..Config::default()
    };
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter());
    println!(
        "CMUDict: {} training words, {} test words; {cfg:?}",
        dict.train.len(),
        dict.test.len()
    );
    let m = model(&cfg, seed)?;
    let (mut trainer, _) = train(
        &ctx,
        &m,
        &cfg,
        &dict.train,
        epochs,
        seed,
        args.checkpoint.as_deref(),
    )?;
    let start = std::time::Instant::now();
    let (per, wer, decoded) = evaluate(&m, &mut trainer, &cfg, &dict.test, beam)?;
    let secs = start.elapsed().as_secs_f64();
    for (w, d) in dict.test.iter().zip(&decoded).take(8) {
        println!(
            "{:>16}  {}  (reference {})",
            w.word,
            cmudict::symbols(d),
            w.phoneme_string()
        );
    }
    println!(
        "decoded {} words at {:.0} words/s",
        decoded.len(),
        decoded.len() as f64 / secs
    );
    println!("PER: {:.1}% WER: {:.1}%", 100.0 * per, 100.0 * wer);
    Ok(())
}
