//! Export of sequence models: wgrad's fused scans as ONNX `LSTM`, `GRU` and `RNN` nodes,
//! and a sequence's last or first step as a gather.
//!
//! A sequence tensor `[batch, seq, ..]` keeps that layout in the file; its lengths input
//! (`[batch]`, float as in wgrad) is cast to the int32 `sequence_lens` the recurrences take.
//! A scan's operand is wgrad's input projection `xproj` (`x·W + b`), so the ONNX node's `W`
//! is the permutation from wgrad's gate blocks to ONNX's order (identity for GRU and RNN)
//! and its `R` is the recurrent weights transposed into that order. ONNX's recurrences, like
//! wgrad's, hold a finished sequence's state and write zeros past its length.

use super::super::generated::tensor_proto::DataType;
use super::super::proto::{float_tensor, Attr};
use super::Exporter;
use crate::graph::{NodeId, Op};
use crate::{Error, Result};

/// Which recurrence: its ONNX op, its gate count, and where each ONNX gate block comes from
/// among wgrad's blocks.
#[derive(Clone, Copy)]
struct Cell {
    op_type: &'static str,
    /// For each ONNX gate block in ONNX's order, wgrad's block.
    blocks: &'static [usize],
}

/// wgrad's LSTM blocks are g, i, f, o; ONNX's are i, o, f, c.
const LSTM: Cell = Cell {
    op_type: "LSTM",
    blocks: &[1, 3, 2, 0],
};
/// Both order a GRU's blocks z, r, candidate, with `h' = (1 − z)·c + z·h` and the reset
/// gate applied before the candidate's product (ONNX's `linear_before_reset = 0`).
const GRU: Cell = Cell {
    op_type: "GRU",
    blocks: &[0, 1, 2],
};
/// `h' = tanh(xproj + h·U)`.
const RNN: Cell = Cell {
    op_type: "RNN",
    blocks: &[0],
};

/// A scan's operands.
struct Scan {
    xproj: NodeId,
    u: NodeId,
    h0: NodeId,
    c0: Option<NodeId>,
    lengths: NodeId,
    backwards: bool,
    forget_bias: f32,
}

impl Exporter<'_> {
    /// The hidden states `[batch, seq, H]` of the scan node `id`, written once.
    pub(super) fn scan_hidden(&mut self, id: NodeId) -> Result<String> {
        if let Some(n) = self.scan_outputs.get(&id.0) {
            return Ok(n.clone());
        }
        let (cell, scan) = match self.nodes[id.0].op.clone() {
            Op::LstmScan {
                xproj,
                u,
                h0,
                c0,
                lengths,
                backwards,
                forget_bias,
            } => {
                let scan = Scan {
                    xproj,
                    u,
                    h0,
                    c0: Some(c0),
                    lengths,
                    backwards,
                    forget_bias,
                };
                (LSTM, scan)
            }
            Op::GruScan {
                xproj,
                u,
                h0,
                lengths,
                backwards,
            }
            | Op::RnnScan {
                xproj,
                u,
                h0,
                lengths,
                backwards,
            } => {
                let cell = match self.nodes[id.0].op {
                    Op::GruScan { .. } => GRU,
                    _ => RNN,
                };
                let scan = Scan {
                    xproj,
                    u,
                    h0,
                    c0: None,
                    lengths,
                    backwards,
                    forget_bias: 0.0,
                };
                (cell, scan)
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "onnx export: node {} is not a recurrence",
                    id.0
                )))
            }
        };
        let y = self.recurrence(cell, &scan)?;
        self.scan_outputs.insert(id.0, y.clone());
        Ok(y)
    }

    /// `Slice` of an LSTM scan's `[h | c]`: the hidden half is the ONNX node's `Y`; the cell
    /// states of every step have no ONNX equivalent.
    pub(super) fn lstm_half(&mut self, scan: NodeId, begin: usize, len: usize) -> Result<String> {
        let hidden = self.shape(scan).0[2].resolve(1) / 2;
        if begin == 0 && len == hidden {
            return self.scan_hidden(scan);
        }
        Err(Error::Invalid(format!(
            "onnx export: node {} reads an LSTM's cell states at every step, which ONNX's LSTM \
             does not give (only its hidden states)",
            scan.0
        )))
    }

    /// `x`'s last (or first) valid step: `[batch, seq, ..] → [batch, ..]`.
    pub(super) fn seq_pick(&mut self, x: NodeId, lengths: NodeId, last: bool) -> Result<String> {
        let xv = self.value(x)?;
        if !last {
            let zero = self.ints(&[0]);
            let first = self.op("Gather", &[&xv, &zero], vec![("axis", Attr::Int(1))]);
            let axes = self.ints(&[1]);
            return Ok(self.op("Squeeze", &[&first, &axes], vec![]));
        }
        let lens = self.value(lengths)?;
        let one = self.float_const(&[], &[1.0]);
        let at = self.op("Sub", &[&lens, &one], vec![]);
        let to = Attr::Int(DataType::Int64 as i64);
        let at = self.op("Cast", &[&at], vec![("to", to)]);
        let axes = self.ints(&[1]);
        let at = self.op("Unsqueeze", &[&at, &axes], vec![]);
        Ok(self.op("GatherND", &[&xv, &at], vec![("batch_dims", Attr::Int(1))]))
    }

    /// A float `Constant` node.
    fn float_const(&mut self, dims: &[usize], values: &[f32]) -> String {
        let t = float_tensor("", dims, values);
        self.op("Constant", &[], vec![("value", Attr::Tensor(Box::new(t)))])
    }

    /// Writes the ONNX recurrence of `scan` and returns its hidden states `[batch, seq, H]`.
    fn recurrence(&mut self, cell: Cell, scan: &Scan) -> Result<String> {
        let hn = self.shape(scan.u).0[0].resolve(1);
        let gh = cell.blocks.len() * hn;
        // Row k of the permutation picks wgrad's column for ONNX's gate column k.
        let mut perm = vec![0.0f32; gh * gh];
        for (onnx_block, &ours) in cell.blocks.iter().enumerate() {
            for j in 0..hn {
                perm[(onnx_block * hn + j) * gh + ours * hn + j] = 1.0;
            }
        }
        let identity = cell.blocks.iter().enumerate().all(|(k, &b)| k == b);
        let p = self.float_const(&[gh, gh], &perm);
        let axis0 = self.ints(&[0]);
        let w = self.op("Unsqueeze", &[&p, &axis0], vec![]);
        let u = self.value(scan.u)?;
        let ut = self.op("Transpose", &[&u], vec![("perm", Attr::Ints(vec![1, 0]))]);
        let r = match identity {
            true => ut,
            false => self.op("MatMul", &[&p, &ut], vec![]),
        };
        let r = self.op("Unsqueeze", &[&r, &axis0], vec![]);
        let mut bias = vec![0.0f32; 2 * gh];
        if scan.forget_bias != 0.0 {
            // ONNX's forget block is its third (i, o, f, c).
            bias[2 * hn..3 * hn].fill(scan.forget_bias);
        }
        let b = self.float_const(&[1, 2 * gh], &bias);
        let lens = self.value(scan.lengths)?;
        let to = Attr::Int(DataType::Int32 as i64);
        let lens32 = self.op("Cast", &[&lens], vec![("to", to)]);
        let xv = self.value(scan.xproj)?;
        let x = self.op(
            "Transpose",
            &[&xv],
            vec![("perm", Attr::Ints(vec![1, 0, 2]))],
        );
        let h0 = self.initial_state(scan.h0, &lens, hn)?;
        let c0 = match scan.c0 {
            Some(c0) => self.initial_state(c0, &lens, hn)?,
            None => String::new(),
        };
        let mut inputs = vec![x.as_str(), &w, &r, &b, &lens32, &h0];
        if scan.c0.is_some() {
            inputs.push(&c0);
        }
        let direction = match scan.backwards {
            true => "reverse",
            false => "forward",
        };
        let attrs = vec![
            ("hidden_size", Attr::Int(hn as i64)),
            ("direction", Attr::Str(direction)),
        ];
        let y = self.op(cell.op_type, &inputs, attrs);
        // Y: [seq, directions = 1, batch, H] → [batch, seq, H].
        let axis1 = self.ints(&[1]);
        let y = self.op("Squeeze", &[&y, &axis1], vec![]);
        Ok(self.op(
            "Transpose",
            &[&y],
            vec![("perm", Attr::Ints(vec![1, 0, 2]))],
        ))
    }

    /// An initial state `[batch, H]` as ONNX's `[1, batch, H]`, broadcast to the batch the
    /// lengths input `lens` has.
    fn initial_state(&mut self, state: NodeId, lens: &str, hn: usize) -> Result<String> {
        let s = self.value(state)?;
        let batch = self.op("Shape", &[lens], vec![]);
        let width = self.ints(&[hn as i64]);
        let dims = self.op("Concat", &[&batch, &width], vec![("axis", Attr::Int(0))]);
        let s = self.op("Expand", &[&s, &dims], vec![]);
        let axis0 = self.ints(&[0]);
        Ok(self.op("Unsqueeze", &[&s, &axis0], vec![]))
    }
}
