//! Sequence-level metrics of decoded outputs against references: the edit (Levenshtein)
//! distance, and from it the token error rate (phoneme error rate, PER, for grapheme →
//! phoneme) and the sequence error rate (word error rate, WER: the share of outputs not
//! exactly right).

/// Insertions, deletions and substitutions that turn `hyp` into `reference`.
pub fn edit_distance<T: PartialEq>(hyp: &[T], reference: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=reference.len()).collect();
    let mut row = vec![0; reference.len() + 1];
    for (i, h) in hyp.iter().enumerate() {
        row[0] = i + 1;
        for (j, r) in reference.iter().enumerate() {
            let substitute = prev[j] + usize::from(h != r);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[reference.len()]
}

/// Error rates of decoded sequences against their references.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorRates {
    /// Σ edit distances / Σ reference lengths (PER for phonemes).
    pub token: f64,
    /// Share of sequences that differ from their reference at all (WER for words).
    pub sequence: f64,
}

/// The error rates of `pairs` of (decoded, reference) sequences; zeros when there are none.
pub fn error_rates<T: PartialEq>(pairs: &[(&[T], &[T])]) -> ErrorRates {
    let (mut edits, mut tokens, mut wrong) = (0usize, 0usize, 0usize);
    for (hyp, reference) in pairs {
        let d = edit_distance(hyp, reference);
        edits += d;
        tokens += reference.len();
        wrong += usize::from(d > 0 || hyp.len() != reference.len());
    }
    ErrorRates {
        token: edits as f64 / tokens.max(1) as f64,
        sequence: wrong as f64 / pairs.len().max(1) as f64,
    }
}
