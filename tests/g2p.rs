//! The grapheme-to-phoneme example in a small configuration: on a made-up dictionary (each
//! letter one phoneme) a small model learns, greedy decoding equals teacher forcing fed its
//! own argmax and beam search of width 1, and the error rates come out of decoding.

mod common;
use common::*;

#[allow(dead_code)]
#[path = "../examples/g2p.rs"]
mod g2p;

use rand::{Rng, SeedableRng};
use wgrad::data::cmudict::Pronunciation;

/// Words of 2 to 6 random letters among the first 8, pronounced one phoneme per letter.
fn made_up(n: usize, seed: u64) -> Vec<Pronunciation> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = r.random_range(2..=6);
            let letters: Vec<u8> = (0..len).map(|_| r.random_range(0..8)).collect();
            Pronunciation {
                word: letters.iter().map(|&l| (b'a' + l) as char).collect(),
                phonemes: letters.iter().map(|&l| 3 * l + 1).collect(),
                letters,
            }
        })
        .collect()
}

fn small() -> g2p::Config {
    g2p::Config {
        embed: 8,
        encoder: 16,
        decoder: 32,
        attention: 16,
        batch: 32,
        lr: 1e-2,
        steps: 7,
    }
}

#[test]
fn a_small_g2p_model_learns_and_decodes_as_it_was_taught() {
    let cfg = small();
    let words = made_up(256, 1);
    let m = g2p::model(&cfg, 0).unwrap();
    let (mut trainer, loss) = g2p::train(&ctx(), &m, &cfg, &words, 16, 0, None).unwrap();
    // ln 40 ≈ 3.7 at the start.
    assert!(loss < 0.6, "loss after 16 epochs: {loss}");

    let test = made_up(96, 2);
    let (per, wer, decoded) = g2p::evaluate(&m, &mut trainer, &cfg, &test, 1).unwrap();
    assert!(per < 0.3 && wer <= 1.0, "PER {per}, WER {wer}");

    // Beam search of width 1 is greedy decoding; wider beams keep close to it.
    let refs: Vec<&Pronunciation> = test.iter().collect();
    let one = g2p::beam(&m, &mut trainer, &refs, cfg.steps, 1).unwrap();
    assert_eq!(one, decoded);
    let (per3, _, _) = g2p::evaluate(&m, &mut trainer, &cfg, &test, 3).unwrap();
    assert!(per3 <= per + 0.05, "beam 3: PER {per3}, greedy {per}");

    // Teacher forcing fed the decoded phonemes predicts them again, then END (words shorter
    // than the cap, which must have stopped at END).
    let fed: Vec<Pronunciation> = test
        .iter()
        .zip(&decoded)
        .map(|(w, d)| Pronunciation {
            phonemes: d.clone(),
            ..w.clone()
        })
        .filter(|w| !w.phonemes.is_empty() && w.phonemes.len() < cfg.steps - 1)
        .collect();
    assert!(
        fed.len() > 40,
        "{} words decoded to a usable length",
        fed.len()
    );
    let refs: Vec<&Pronunciation> = fed.iter().collect();
    let batch = g2p::pack(&refs, cfg.steps).unwrap();
    let pred = trainer
        .eval(&[m.prediction], &m.feed(&batch, false))
        .unwrap()
        .remove(0);
    for (k, w) in fed.iter().enumerate() {
        let row: Vec<usize> = (0..=w.phonemes.len())
            .map(|t| pred[k * cfg.steps + t] as usize)
            .collect();
        let mut want: Vec<usize> = w.phonemes.iter().map(|&p| p as usize).collect();
        want.push(g2p::END);
        assert_eq!(row, want, "word {}", w.word);
    }
}

/// The splits travel as CTF sequences: what the example writes, it reads back equal.
#[test]
fn g2p_data_round_trips_through_ctf() {
    let words = made_up(50, 7);
    let path = std::env::temp_dir().join(format!("wgrad-g2p-{}.ctf", std::process::id()));
    g2p::write_ctf(&path, &words).unwrap();
    let back = g2p::read_ctf(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, words);
}
