//! The numerics guard, host side: the guard words a training step reads back with its
//! outputs become an [`Error::NonFinite`] naming the step and where the value was seen.
//! The device half is in `shaders/optim.wgsl`: a flagged step updates nothing.

use super::Executor;
use crate::graph::{NodeId, Op};
use crate::kernels::contract::{GUARD_GRADIENT, GUARD_LOSS, GUARD_RUNS, GUARD_UPDATE};
use crate::{Error, Result};

/// The guard's words for `runs` update runs, rounded up to whole 16-byte rows.
pub(super) fn guard_words(runs: usize) -> usize {
    (GUARD_RUNS as usize + 2 * runs).next_multiple_of(4)
}

/// The guard's cleared contents: no bits, and every "first" word at its maximum.
pub(super) fn cleared(words: usize) -> Vec<u32> {
    let mut v = vec![u32::MAX; words];
    v[0] = 0;
    v
}

impl Executor {
    /// Clears the learner's guard words (queued before the next submission).
    pub(super) fn clear_guard(&self) {
        if let Some(l) = &self.learner {
            let words = (l.guard.size() / 4) as usize;
            self.ctx
                .queue
                .write_buffer(&l.guard, 0, bytemuck::cast_slice(&cleared(words)));
        }
    }

    /// Checks the guard words read back with training step `read_step` (its last output, as
    /// f32 bits); on a flag, clears the guard and returns the error. A flag already reported
    /// (a pipelined step that ran before the guard was cleared) is this step's error too:
    /// its update was skipped as well.
    pub(super) fn check_guard(&self, words: &[f32], read_step: u64) -> Result<()> {
        let w: Vec<u32> = words.iter().map(|v| v.to_bits()).collect();
        if w[0] == 0 {
            return Ok(());
        }
        // The device keeps the step's low 32 bits; the flagged step is at most this one.
        let back = (read_step as u32).wrapping_sub(w[1]) as u64;
        let step = read_step.saturating_sub(back);
        if step <= self.guard_reported.get() {
            return Err(Error::NonFinite {
                step: read_step,
                what: format!("value of step {step}, whose flag was still set when this step ran"),
            });
        }
        self.guard_reported.set(step);
        self.clear_guard();
        let what = if w[0] & GUARD_LOSS != 0 {
            "loss".to_string()
        } else {
            let (kind, word) = match w[0] & GUARD_GRADIENT != 0 {
                true => ("gradient of parameter", 0),
                false => ("update (learning rate too high?) of parameter", 1),
            };
            debug_assert!(w[0] & (GUARD_GRADIENT | GUARD_UPDATE) != 0);
            format!("{kind} {}", self.flagged_parameter(&w, word))
        };
        Err(Error::NonFinite { step, what })
    }

    /// With `ContextOptions::check_numerics`, waits for the call just submitted and fails
    /// naming the first op whose value was not finite.
    pub(super) fn check_numerics(&self) -> Result<()> {
        let Some(buffer) = &self.numerics else {
            return Ok(());
        };
        let first = self.ctx.read(buffer, 0, 1)?[0].to_bits();
        let Some(node) = self.nodes.get(first as usize) else {
            return Ok(());
        };
        let mut op = format!("{:?}", node.op);
        if op.chars().count() > 60 {
            op = op.chars().take(60).chain(['…']).collect();
        }
        // The numerics error is this call's: a training step's guard flag is not kept for
        // the next one.
        self.clear_guard();
        Err(Error::NonFinite {
            step: self.step,
            what: format!(
                "value of node {first} ({op}, shape {}): the first op to produce one (check_numerics)",
                node.shape
            ),
        })
    }

    /// The name of the first parameter whose guard word `word` (0: gradient, 1: update)
    /// was set, with the element.
    fn flagged_parameter(&self, w: &[u32], word: usize) -> String {
        let l = self.learner.as_ref().expect("learner");
        let runs = l.arenas.iter().flat_map(|a| &a.runs);
        for (k, (run_offset, _, members)) in runs.enumerate() {
            let Some(&vec4) = w.get(GUARD_RUNS as usize + 2 * k + word) else {
                break;
            };
            if vec4 == u32::MAX {
                continue;
            }
            let at = run_offset + vec4 as u64 * 16;
            // The member whose byte range holds `at`: the last one starting at or before it.
            let grad = members
                .iter()
                .rev()
                .find(|m| m.1 <= at)
                .map(|m| m.0)
                .unwrap_or(NodeId::at(usize::MAX));
            let param = l.params.iter().find(|p| p.1 == grad).map(|p| p.0);
            let name = match param.map(|p| &self.nodes[p.0].op) {
                Some(Op::Param { name, .. }) => name.clone(),
                _ => "?".into(),
            };
            let member_offset = members.iter().find(|m| m.0 == grad).map_or(0, |m| m.1);
            let element = (at - member_offset) / 4;
            return format!("'{name}' (near element {element})");
        }
        "(unknown)".into()
    }
}
