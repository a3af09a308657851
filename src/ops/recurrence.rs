//! Recurrence: the LSTM, the GRU and the plain RNN, each as one scan over the sequence axis (the whole loop in one kernel,
//! whatever the length), with backpropagation through time as one reverse scan. The input
//! projections of all steps are one product before the scan ([`Graph::lstm`]); per step the
//! kernel runs the recurrent product and the cell.
//!
//! Gate blocks follow CNTK: `[g | i | f | o]` (candidate, input, forget, output), each H
//! wide; PyTorch orders them `[i | f | g | o]`.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::Result;

/// The largest hidden size the LSTM scan kernel holds in workgroup memory.
pub const MAX_LSTM_HIDDEN: usize = 512;

/// The largest hidden size the GRU scan kernel holds in workgroup memory.
pub const MAX_GRU_HIDDEN: usize = 256;

impl Graph {
    /// An LSTM over the sequence `x: [batch, seq, F]` with input weights `w: [F, 4H]`,
    /// recurrent weights `u: [H, 4H]`, bias `b: [4H]` and initial states `h0`, `c0` (each
    /// broadcast to `[batch, H]`; a scalar 0 for zeros). `forget_bias` is added to the forget
    /// gate (1 starts training with the gate open, as a forget bias initialised to 1 would).
    /// Returns the hidden states of every step, `[batch, seq, H]`, and the cell states.
    #[allow(clippy::too_many_arguments)]
    pub fn lstm(
        &self,
        x: NodeId,
        w: NodeId,
        u: NodeId,
        b: NodeId,
        h0: NodeId,
        c0: NodeId,
        backwards: bool,
        forget_bias: f32,
    ) -> Result<(NodeId, NodeId)> {
        let xproj = self.bias_act(self.matmul(x, w)?, b, -1, None)?;
        let state = self.lstm_scan(xproj, u, h0, c0, backwards, forget_bias)?;
        let hn = self.shape(u).0[0].resolve(0);
        let h = self.slice(state, -1, 0, hn)?;
        let c = self.slice(state, -1, hn, 2 * hn)?;
        Ok((h, c))
    }

    /// The LSTM scan itself, from input projections `xproj: [batch, seq, 4H]` (see
    /// [`Op::LstmScan`]): the states `[h | c]` of every step, `[batch, seq, 2H]`.
    pub fn lstm_scan(
        &self,
        xproj: NodeId,
        u: NodeId,
        h0: NodeId,
        c0: NodeId,
        backwards: bool,
        forget_bias: f32,
    ) -> Result<NodeId> {
        let op = "lstm";
        let hn = self.scan_hidden(op, xproj, u, 4, MAX_LSTM_HIDDEN)?;
        let (h0, c0) = (self.scan_state(op, h0, hn)?, self.scan_state(op, c0, hn)?);
        let (_, lengths) = self.sequence_operand(op, xproj)?;
        let scan = Op::LstmScan {
            xproj,
            u,
            h0,
            c0,
            lengths,
            backwards,
            forget_bias,
        };
        Ok(self.push(scan, self.seq_like(xproj, 2 * hn)))
    }

    /// A GRU over `x: [batch, seq, F]` in CNTK's convention (see gru.wgsl), with input
    /// weights `w: [F, 3H]`, recurrent weights `u: [H, 3H]` (blocks z, r, c), bias `b: [3H]`
    /// and initial state `h0` (broadcast to `[batch, H]`): the hidden states `[batch, seq, H]`.
    #[allow(clippy::too_many_arguments)]
    pub fn gru(
        &self,
        x: NodeId,
        w: NodeId,
        u: NodeId,
        b: NodeId,
        h0: NodeId,
        backwards: bool,
    ) -> Result<NodeId> {
        let xproj = self.bias_act(self.matmul(x, w)?, b, -1, None)?;
        self.gru_scan(xproj, u, h0, backwards)
    }

    /// The GRU scan itself, from input projections `xproj: [batch, seq, 3H]`.
    pub fn gru_scan(
        &self,
        xproj: NodeId,
        u: NodeId,
        h0: NodeId,
        backwards: bool,
    ) -> Result<NodeId> {
        let op = "gru";
        let hn = self.scan_hidden(op, xproj, u, 3, MAX_GRU_HIDDEN)?;
        let h0 = self.scan_state(op, h0, hn)?;
        let (_, lengths) = self.sequence_operand(op, xproj)?;
        let scan = Op::GruScan {
            xproj,
            u,
            h0,
            lengths,
            backwards,
        };
        Ok(self.push(scan, self.seq_like(xproj, hn)))
    }

    /// Checks a scan's operands (`xproj: [batch, seq, gates·H]`, `u: [H, gates·H]`, H at
    /// most `max`) and returns H.
    fn scan_hidden(
        &self,
        op: &'static str,
        xproj: NodeId,
        u: NodeId,
        gates: usize,
        max: usize,
    ) -> Result<usize> {
        let (sx, su) = (self.check(op, xproj)?, self.check(op, u)?);
        let hn = match su.0[..] {
            [Dim::Fixed(h), Dim::Fixed(g)] if g == gates * h => h,
            _ => {
                return shape_err(
                    op,
                    format!("recurrent weights must be [H, {gates}H], got {su}"),
                )
            }
        };
        if hn > max {
            return shape_err(
                op,
                format!("hidden size {hn} is above the scan kernel's {max}"),
            );
        }
        if sx.seq_axis().is_none() || sx.rank() != 3 || sx.0[2] != Dim::Fixed(gates * hn) {
            let want = gates * hn;
            return shape_err(
                op,
                format!("input projections must be [batch, seq, {want}] for {su}, got {sx}"),
            );
        }
        Ok(hn)
    }

    /// `[batch, seq, n]` on the sequence axis of `x`.
    fn seq_like(&self, x: NodeId, n: usize) -> Shape {
        let mut d = self.shape(x).0[..2].to_vec();
        d.push(Dim::Fixed(n));
        Shape(d)
    }

    /// An initial state `s` broadcast to `[batch, hn]`.
    fn scan_state(&self, op: &'static str, s: NodeId, hn: usize) -> Result<NodeId> {
        let step = Shape(vec![Dim::Batch, Dim::Fixed(hn)]);
        let ss = self.check(op, s)?;
        if Shape::broadcast(op, &ss, &step)? != step {
            return shape_err(op, format!("initial state {ss} does not fit {step}"));
        }
        if ss == step {
            Ok(s)
        } else {
            self.expand(s, step)
        }
    }

    /// A plain RNN over `x: [batch, seq, F]`: `h' = tanh(x·w + b + h·u)` with `w: [F, H]`,
    /// `u: [H, H]`, `b: [H]` and `h0` broadcast to `[batch, H]`: the hidden states
    /// `[batch, seq, H]`.
    pub fn rnn(
        &self,
        x: NodeId,
        w: NodeId,
        u: NodeId,
        b: NodeId,
        h0: NodeId,
        backwards: bool,
    ) -> Result<NodeId> {
        let xproj = self.bias_act(self.matmul(x, w)?, b, -1, None)?;
        self.rnn_scan(xproj, u, h0, backwards)
    }

    /// The plain RNN's scan itself, from input projections `xproj: [batch, seq, H]`.
    pub fn rnn_scan(
        &self,
        xproj: NodeId,
        u: NodeId,
        h0: NodeId,
        backwards: bool,
    ) -> Result<NodeId> {
        let op = "rnn";
        let hn = self.scan_hidden(op, xproj, u, 1, MAX_LSTM_HIDDEN)?;
        let h0 = self.scan_state(op, h0, hn)?;
        let (_, lengths) = self.sequence_operand(op, xproj)?;
        let scan = Op::RnnScan {
            xproj,
            u,
            h0,
            lengths,
            backwards,
        };
        Ok(self.push(scan, self.seq_like(xproj, hn)))
    }

    /// The state each step of a scan starts from: `h` one step earlier (later when going
    /// backwards), `h0` at the first step of the scan.
    fn state_before(&self, h: NodeId, h0: NodeId, backwards: bool) -> Result<NodeId> {
        if backwards {
            self.future_value(h, h0)
        } else {
            self.past_value(h, h0)
        }
    }

    /// What a reverse scan's output `grads` holds in `range` (of its last axis) at the scan's
    /// first step: the gradient reaching the initial state.
    fn at_scan_start(
        &self,
        grads: NodeId,
        range: std::ops::Range<usize>,
        backwards: bool,
    ) -> Result<NodeId> {
        let part = self.slice(grads, -1, range.start, range.end)?;
        if backwards {
            self.sequence_last(part)
        } else {
            self.sequence_first(part)
        }
    }

    /// The plain RNN's gradient rule (see [`Graph::grad_recurrence`]).
    fn grad_rnn(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let Op::RnnScan {
            xproj,
            u,
            h0,
            lengths,
            backwards,
        } = *op
        else {
            return Err(crate::Error::Invalid(
                "grad: second derivatives through an RNN scan are not supported".into(),
            ));
        };
        let hn = self.shape(u).0[0].resolve(0);
        let back = Op::RnnScanGrad {
            xproj,
            u,
            h0,
            lengths,
            state: out,
            g,
            backwards,
        };
        let grads = self.push(back, self.seq_like(xproj, 2 * hn));
        let dz = self.slice(grads, -1, 0, hn)?;
        let mut res = vec![(xproj, dz)];
        if wants(u) {
            let before = self.state_before(out, h0, backwards)?;
            res.push((u, self.matmul_sum_batch(before, dz)?));
        }
        if wants(h0) {
            res.push((h0, self.at_scan_start(grads, hn..2 * hn, backwards)?));
        }
        Ok(res)
    }

    /// The GRU's gradient rule (see [`Graph::grad_recurrence`]).
    fn grad_gru(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let Op::GruScan {
            xproj,
            u,
            h0,
            lengths,
            backwards,
        } = *op
        else {
            return Err(crate::Error::Invalid(
                "grad: second derivatives through a GRU scan are not supported".into(),
            ));
        };
        let hn = self.shape(u).0[0].resolve(0);
        let back = Op::GruScanGrad {
            xproj,
            u,
            h0,
            lengths,
            state: out,
            g,
            backwards,
        };
        let grads = self.push(back, self.seq_like(xproj, 5 * hn));
        let dxproj = self.slice(grads, -1, 0, 3 * hn)?;
        let mut res = vec![(xproj, dxproj)];
        if wants(u) {
            // [dUz | dUr] = Σ h_before(t)ᵀ · [dz | dr](t);  dUc = Σ (r ⊙ h)(t)ᵀ · dc(t).
            let before = self.state_before(out, h0, backwards)?;
            let dzr = self.slice(grads, -1, 0, 2 * hn)?;
            let dc = self.slice(grads, -1, 2 * hn, 3 * hn)?;
            let rh = self.slice(grads, -1, 4 * hn, 5 * hn)?;
            let du = self.concat(
                self.matmul_sum_batch(before, dzr)?,
                self.matmul_sum_batch(rh, dc)?,
                -1,
            )?;
            res.push((u, du));
        }
        if wants(h0) {
            res.push((h0, self.at_scan_start(grads, 3 * hn..4 * hn, backwards)?));
        }
        Ok(res)
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_recurrence(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        if matches!(op, Op::GruScan { .. } | Op::GruScanGrad { .. }) {
            return self.grad_gru(out, op, g, wants);
        }
        if matches!(op, Op::RnnScan { .. } | Op::RnnScanGrad { .. }) {
            return self.grad_rnn(out, op, g, wants);
        }
        let Op::LstmScan {
            xproj,
            u,
            h0,
            c0,
            lengths,
            backwards,
            forget_bias,
        } = *op
        else {
            return Err(crate::Error::Invalid(
                "grad: second derivatives through an LSTM scan are not supported".into(),
            ));
        };
        let hn = self.shape(u).0[0].resolve(0);
        let back = Op::LstmScanGrad {
            xproj,
            u,
            h0,
            c0,
            lengths,
            state: out,
            g,
            backwards,
            forget_bias,
        };
        let grads = self.push(back, self.seq_like(xproj, 6 * hn));
        let dz = self.slice(grads, -1, 0, 4 * hn)?;
        let mut res = vec![(xproj, dz)];
        if wants(u) {
            // dU = Σ over sequences and steps of h_before(t)ᵀ · dz(t).
            let h = self.slice(out, -1, 0, hn)?;
            let before = self.state_before(h, h0, backwards)?;
            res.push((u, self.matmul_sum_batch(before, dz)?));
        }
        if wants(h0) {
            res.push((h0, self.at_scan_start(grads, 4 * hn..5 * hn, backwards)?));
        }
        if wants(c0) {
            res.push((c0, self.at_scan_start(grads, 5 * hn..6 * hn, backwards)?));
        }
        Ok(res)
    }
}
