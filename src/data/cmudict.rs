//! The CMU Pronouncing Dictionary (`word PH1 PH2 …` per line, raw or gzip) prepared for
//! grapheme → phoneme: alternate pronunciations (`word(2)`) and words with characters other
//! than a–z and the apostrophe are dropped, stress digits stripped (39 phonemes), words of at
//! most [`MAX_LETTERS`] letters kept; the words are sorted and every 20th, starting with the
//! first, goes to the test split.

use std::path::Path;

use crate::{Error, Result};

/// The 39 phonemes (ARPAbet without stress), in alphabetical order: a phoneme's index.
pub const PHONEMES: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH",
];

/// The 27 letters (a–z, then the apostrophe): a letter's index.
pub const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz'";

/// The longest word kept, in letters.
pub const MAX_LETTERS: usize = 16;

/// Every this many sorted words, one goes to the test split.
pub const TEST_EVERY: usize = 20;

/// One word and its pronunciation, as indices into [`LETTERS`] and [`PHONEMES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pronunciation {
    /// The word, lower case.
    pub word: String,
    /// Its letters' indices.
    pub letters: Vec<u8>,
    /// Its phonemes' indices.
    pub phonemes: Vec<u8>,
}

impl Pronunciation {
    /// The phonemes as ARPAbet symbols, space-separated.
    pub fn phoneme_string(&self) -> String {
        symbols(&self.phonemes)
    }
}

/// Phoneme indices as ARPAbet symbols, space-separated (indices past the table as `?`).
pub fn symbols(phonemes: &[u8]) -> String {
    phonemes
        .iter()
        .map(|&p| PHONEMES.get(p as usize).copied().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The prepared dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmuDict {
    /// Training words, sorted.
    pub train: Vec<Pronunciation>,
    /// Test words (every 20th sorted word), sorted.
    pub test: Vec<Pronunciation>,
}

/// Reads and prepares a dictionary file (`cmudict.dict` or its `.gz`).
///
/// # Errors
/// An unreadable file or gzip stream, or a line with no phonemes or an unknown phoneme
/// (named with the file and line).
pub fn load(path: &Path) -> Result<CmuDict> {
    let bytes = super::mnist::read_maybe_gzip(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&text, &path.display().to_string())
}

/// Prepares the dictionary from its text; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<CmuDict> {
    let mut words = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(p) = parse_line(line)
            .map_err(|m| Error::Invalid(format!("{source}: line {}: {m}: {line:?}", i + 1)))?
        {
            words.push(p);
        }
    }
    words.sort_by(|a, b| a.word.cmp(&b.word));
    if let Some(w) = words.windows(2).find(|w| w[0].word == w[1].word) {
        return Err(Error::Invalid(format!(
            "{source}: the word {:?} is listed twice without an alternate's (n) mark",
            w[0].word
        )));
    }
    if words.len() < TEST_EVERY {
        return Err(Error::Invalid(format!(
            "{source}: {} words kept, too few for a test split (every {TEST_EVERY}th word)",
            words.len()
        )));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (k, w) in words.into_iter().enumerate() {
        if k % TEST_EVERY == 0 {
            test.push(w);
        } else {
            train.push(w);
        }
    }
    Ok(CmuDict { train, test })
}

/// One line: `Ok(None)` for a line dropped by the preparation (blank, a comment, an
/// alternate, a word with other characters or too long), an error for a malformed one.
fn parse_line(line: &str) -> std::result::Result<Option<Pronunciation>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    let mut parts = line.split_whitespace();
    let Some(word) = parts.next() else {
        return Ok(None);
    };
    if word.ends_with(')') && word.contains('(') {
        return Ok(None);
    }
    let letters: Option<Vec<u8>> = word
        .chars()
        .map(|c| LETTERS.find(c).map(|k| k as u8))
        .collect();
    let Some(letters) = letters else {
        return Ok(None);
    };
    if letters.len() > MAX_LETTERS {
        return Ok(None);
    }
    let mut phonemes = Vec::new();
    for (col, ph) in parts.enumerate() {
        let bare = ph.trim_end_matches(|c: char| c.is_ascii_digit());
        match PHONEMES.iter().position(|&p| p == bare) {
            Some(k) => phonemes.push(k as u8),
            None => return Err(format!("phoneme {} ({ph:?}) is not one of the 39", col + 1)),
        }
    }
    if phonemes.is_empty() {
        return Err(format!("the word {word:?} has no phonemes"));
    }
    Ok(Some(Pronunciation {
        word: word.to_string(),
        letters,
        phonemes,
    }))
}
