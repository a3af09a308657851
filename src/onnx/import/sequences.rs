//! Import of sequence models: sequence inputs (batch-major `[batch, seq, ..]`, or time-major
//! `[seq, batch, ..]` where a recurrence reads them so, as PyTorch's LSTMs without
//! `batch_first` do), ONNX's `LSTM`, `GRU` and `RNN` as wgrad's scans, and a sequence's first
//! and last steps.
//!
//! Every sequence input shares the graph's first sequence axis. Its lengths are the graph
//! input that the recurrences take as `sequence_lens` (through casts), or, in a file without
//! one, a `sequence lengths` input added to the model. A recurrence's weights become wgrad's
//! parameters in wgrad's layout (`w: [F, gates·H]`, `u: [H, gates·H]` in wgrad's gate order,
//! one bias `Wb + Rb`), per direction; weights computed in the graph (as wgrad's own exports
//! write them) are rearranged by graph ops instead, so they stay trainable.

use std::collections::HashSet;

use super::super::generated::{type_proto, GraphProto, NodeProto};
use super::super::proto::{attr, attr_int, attr_ints, attr_string};
use super::{invalid, Importer, Value};
use crate::graph::{NodeId, SEQUENCE_LENGTHS};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// A recurrence's cell: its gate count and, for each ONNX gate block in ONNX's order,
/// wgrad's block (the inverse of the exporter's table).
struct Cell {
    gates: usize,
    blocks: &'static [usize],
    /// The activations ONNX's default gives this cell (others are refused).
    activations: &'static [&'static str],
}

/// ONNX orders an LSTM's blocks i, o, f, c; wgrad g, i, f, o.
const LSTM: Cell = Cell {
    gates: 4,
    blocks: &[1, 3, 2, 0],
    activations: &["Sigmoid", "Tanh", "Tanh"],
};
/// Both order a GRU's blocks z, r, candidate.
const GRU: Cell = Cell {
    gates: 3,
    blocks: &[0, 1, 2],
    activations: &["Sigmoid", "Tanh"],
};
const RNN: Cell = Cell {
    gates: 1,
    blocks: &[0],
    activations: &["Tanh"],
};

/// What the recurrences of a graph say about its inputs.
#[derive(Default)]
pub(super) struct SequenceInputs {
    /// The input holding the sequences' lengths.
    lengths: Option<String>,
    /// Inputs a recurrence reads time-major (`layout` 0).
    time_major: HashSet<String>,
    /// Inputs a recurrence reads batch-major (`layout` 1).
    batch_major: HashSet<String>,
}

impl<'a> Importer<'a> {
    /// The tensor `name` comes from, through casts and identities.
    fn source(&self, mut name: &'a str) -> &'a str {
        while let Some(p) = self.producers.get(name) {
            match (p.op_type(), p.input.first()) {
                ("Cast" | "Identity", Some(i)) => name = i,
                _ => break,
            }
        }
        name
    }

    fn sequence_inputs(&self, graph: &'a GraphProto) -> Result<SequenceInputs> {
        let mut found = SequenceInputs::default();
        for n in &graph.node {
            if !matches!(n.op_type(), "LSTM" | "GRU" | "RNN") {
                continue;
            }
            let x = self.source(n.input.first().map_or("", String::as_str));
            match attr_int(n, "layout", 0) {
                0 => found.time_major.insert(x.to_string()),
                _ => found.batch_major.insert(x.to_string()),
            };
            let Some(lens) = n.input.get(4).filter(|s| !s.is_empty()) else {
                continue;
            };
            let lens = self.source(lens).to_string();
            match &found.lengths {
                Some(l) if *l != lens => {
                    return invalid(format!(
                        "onnx: recurrences take lengths from '{l}' and '{lens}'; wgrad imports one sequence axis"
                    ))
                }
                _ => found.lengths = Some(lens),
            }
        }
        Ok(found)
    }

    /// The graph's inputs that are not initializers: a sequence input (its second axis
    /// symbolic too, or one a recurrence reads) on the first sequence axis, its lengths
    /// that axis's lengths, any other with its first axis as the batch.
    pub(super) fn inputs(&mut self, graph: &'a GraphProto) -> Result<Vec<(String, NodeId)>> {
        use super::super::generated::tensor_shape_proto::dimension::Value as D;
        let seqs = self.sequence_inputs(graph)?;
        let mut out = Vec::new();
        let mut axis = None;
        for vi in &graph.input {
            let name = vi.name();
            if self.inits.contains_key(name) {
                continue;
            }
            let tensor = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => t,
                _ => return invalid(format!("onnx: input '{name}' is not a tensor")),
            };
            super::check_input_type(name, tensor.elem_type)?;
            let shape: Vec<Option<usize>> = tensor
                .shape
                .as_ref()
                .map(|s| &s.dim[..])
                .unwrap_or(&[])
                .iter()
                .map(|d| match d.value {
                    Some(D::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect();
            if shape.is_empty() {
                return invalid(format!(
                    "onnx: input '{name}' has no shape; wgrad needs [batch, ..]"
                ));
            }
            let time_major = seqs.time_major.contains(name);
            let is_lengths = seqs.lengths.as_deref() == Some(name);
            let is_seq = !is_lengths
                && (time_major
                    || seqs.batch_major.contains(name)
                    || (shape.len() >= 2 && shape[1].is_none()));
            let lead = if is_seq { 2 } else { 1 };
            let Some(features) = shape
                .get(lead..)
                .and_then(|d| d.iter().copied().collect::<Option<Vec<usize>>>())
            else {
                return invalid(format!(
                    "onnx: input '{name}': only its batch axis (and sequence axis) may be symbolic"
                ));
            };
            if is_lengths || is_seq {
                let a = match (axis, &seqs.lengths) {
                    (Some(a), _) => a,
                    (None, Some(l)) => self.g.first_axis_named(l)?,
                    (None, None) => self.g.first_sequence_axis(),
                };
                axis = Some(a);
                if is_lengths {
                    if !features.is_empty() {
                        return invalid(format!("onnx: sequence lengths '{name}' must be [batch]"));
                    }
                    let id = self.g.axis_lengths(a);
                    self.values.insert(name.to_string(), Value::Node(id));
                    out.push((name.to_string(), id));
                    continue;
                }
                let id = self.g.input_sequence_on(a, name, &features)?;
                let mut perm: Vec<usize> = (0..features.len() + 2).collect();
                if time_major {
                    perm.swap(0, 1);
                }
                let v = self.normalize(id, perm)?;
                self.values.insert(name.to_string(), v);
                out.push((name.to_string(), id));
                continue;
            }
            let id = self.g.input(name, &features)?;
            self.values.insert(name.to_string(), Value::Node(id));
            out.push((name.to_string(), id));
        }
        if let Some(l) = &seqs.lengths {
            if !out.iter().any(|(n, _)| n == l) {
                return invalid(format!(
                    "onnx: the recurrences' sequence_lens '{l}' must be a graph input"
                ));
            }
        } else if axis.is_some() {
            // A file without lengths (all sequences full): wgrad feeds them all the same.
            out.push((SEQUENCE_LENGTHS.to_string(), self.g.sequence_lengths()));
        }
        Ok(out)
    }

    /// An `LSTM`, `GRU` or `RNN` node: one wgrad scan per direction, its outputs `Y`, `Y_h`
    /// (and `Y_c`) in the node's layout.
    pub(super) fn recurrence(&mut self, n: &NodeProto) -> Result<()> {
        let cell = match n.op_type() {
            "LSTM" => LSTM,
            "GRU" => GRU,
            _ => RNN,
        };
        self.check_recurrence(n, &cell)?;
        let layout = attr_int(n, "layout", 0);
        let dirs: &[bool] = match attr_string(n, "direction", "forward").as_str() {
            "forward" => &[false],
            "reverse" => &[true],
            "bidirectional" => &[false, true],
            other => return invalid(format!("direction '{other}' is not an ONNX direction")),
        };
        let (x, perm) = self.view_input(n, 0)?;
        let want: &[usize] = if layout == 0 { &[1, 0, 2] } else { &[0, 1, 2] };
        let sx = self.g.shape(x);
        if sx.seq_axis().is_none() || perm != want {
            let held: Vec<Dim> = perm.iter().map(|&a| sx.0[a]).collect();
            return invalid(format!(
                "X must be a sequence tensor read {} (layout {layout}), got {held:?}",
                if layout == 0 {
                    "[seq, batch, F]"
                } else {
                    "[batch, seq, F]"
                }
            ));
        }
        if Self::has(n, 4) {
            let lens = self.input(n, 4)?;
            let axis = self.g.sequence_axis_of(x)?;
            if lens != self.g.axis_lengths(axis) {
                return invalid(
                    "sequence_lens must be the lengths of X's sequence axis (a graph input)",
                );
            }
        }
        let feat = sx.0[2].resolve(1);
        let hn = match attr(n, "hidden_size") {
            Some(_) => attr_int(n, "hidden_size", 0) as usize,
            None => return invalid("hidden_size is required"),
        };
        let mut hs = Vec::new();
        let mut cs = Vec::new();
        for (d, &backwards) in dirs.iter().enumerate() {
            let dir = match (dirs.len(), backwards) {
                (1, _) => String::new(),
                (_, false) => ".forward".to_string(),
                (_, true) => ".reverse".to_string(),
            };
            let w = self.gate_weights(n, 1, d, dirs.len(), &cell, (feat, hn), &dir)?;
            let u = self.gate_weights(n, 2, d, dirs.len(), &cell, (hn, hn), &dir)?;
            let b = self.gate_bias(n, d, dirs.len(), &cell, hn, &dir)?;
            let mut xproj = match w {
                Some(w) => self.g.matmul(x, w)?,
                None => x,
            };
            if let Some(b) = b {
                xproj = self.g.bias_act(xproj, b, -1, None)?;
            }
            let u = u.ok_or_else(|| Error::Invalid("R is empty".into()))?;
            let h0 = self.initial_state(n, 5, d, dirs.len(), layout, hn)?;
            let h = match n.op_type() {
                "LSTM" => {
                    let c0 = self.initial_state(n, 6, d, dirs.len(), layout, hn)?;
                    let state = self.g.lstm_scan(xproj, u, h0, c0, backwards, 0.0)?;
                    cs.push(self.g.slice(state, -1, hn, 2 * hn)?);
                    self.g.slice(state, -1, 0, hn)?
                }
                "GRU" => self.g.gru_scan(xproj, u, h0, backwards)?,
                _ => self.g.rnn_scan(xproj, u, h0, backwards)?,
            };
            hs.push(h);
        }
        self.recurrence_outputs(n, dirs, layout, hn, &hs, &cs)
    }

    /// Refuses what wgrad's cells do not compute: other activations, clipping, coupled
    /// input-forget gates, peepholes, and the GRU's reset after the product.
    fn check_recurrence(&self, n: &NodeProto, cell: &Cell) -> Result<()> {
        if let Some(a) = attr(n, "activations") {
            let given: Vec<String> = a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            if given.chunks(cell.activations.len()).any(|c| {
                c.iter()
                    .zip(cell.activations)
                    .any(|(g, w)| !g.eq_ignore_ascii_case(w))
            }) {
                return invalid(format!(
                    "activations {given:?}: wgrad's cell computes ONNX's default {:?}",
                    cell.activations
                ));
            }
        }
        for key in ["clip", "activation_alpha", "activation_beta"] {
            if attr(n, key).is_some() {
                return invalid(format!("attribute {key} is not supported"));
            }
        }
        if attr_int(n, "input_forget", 0) != 0 {
            return invalid("input_forget 1 (coupled input and forget gates) is not supported");
        }
        if attr_int(n, "linear_before_reset", 0) != 0 {
            return invalid(
                "linear_before_reset 1 (PyTorch's GRU: r ⊙ (h·R + Rb)) is not supported: wgrad's GRU applies the reset gate before the product (linear_before_reset 0)",
            );
        }
        if Self::has(n, 7) {
            let zero = self
                .host_floats(&n.input[7])
                .is_some_and(|(_, v)| v.iter().all(|&p| p == 0.0));
            if !zero {
                return invalid("peephole weights P are not supported");
            }
        }
        Ok(())
    }

    /// Direction `d`'s weights from input `i` (`W: [dirs, gates·H, k]` or `R`) in wgrad's
    /// layout `[k, gates·H]`, wgrad's gate order; `None` when they are the identity (a
    /// file whose `X` already holds the projections, as wgrad's exports write).
    #[allow(clippy::too_many_arguments)]
    fn gate_weights(
        &mut self,
        n: &NodeProto,
        i: usize,
        d: usize,
        dirs: usize,
        cell: &Cell,
        (k, hn): (usize, usize),
        dir: &str,
    ) -> Result<Option<NodeId>> {
        let name = n.input.get(i).cloned().unwrap_or_default();
        let gh = cell.gates * hn;
        let order = |ours: usize| -> usize {
            // wgrad's column → ONNX's row.
            let (block, j) = (ours / hn, ours % hn);
            let theirs = cell.blocks.iter().position(|&b| b == block).unwrap_or(0);
            theirs * hn + j
        };
        if let Some((dims, v)) = self.host_floats(&name) {
            if dims != [dirs, gh, k] {
                return invalid(format!(
                    "input {i} ('{name}') is {dims:?}, expected [{dirs}, {gh}, {k}]"
                ));
            }
            let mut out = vec![0.0f32; k * gh];
            for r in 0..k {
                for c in 0..gh {
                    out[r * gh + c] = v[(d * gh + order(c)) * k + r];
                }
            }
            let identity =
                k == gh && (0..k).all(|r| (0..gh).all(|c| out[r * gh + c] == f32::from(r == c)));
            let trainable = self.inits.contains_key(&name);
            if identity && !trainable {
                return Ok(None);
            }
            let node = match trainable {
                true => self
                    .g
                    .variable_from(&format!("{name}{dir}"), &[k, gh], &out, true)?,
                false => self.given(&format!("{name}{dir}"), &[k, gh], &out, false)?,
            };
            return Ok(Some(node));
        }
        // Computed in the graph: slice, then reorder rows by a product with a permutation.
        let t = self.input(n, i)?;
        let st = self.g.shape(t);
        if st.0 != Shape::fixed(&[dirs, gh, k]).0 {
            return invalid(format!(
                "input {i} ('{name}') is {st}, expected [{dirs}, {gh}, {k}]"
            ));
        }
        let wd = self
            .g
            .reshape(self.g.slice(t, 0, d, d + 1)?, Shape::fixed(&[gh, k]))?;
        if cell.blocks.iter().enumerate().all(|(a, &b)| a == b) {
            return Ok(Some(self.g.permute(wd, &[1, 0])?));
        }
        let mut q = vec![0.0f32; gh * gh];
        for c in 0..gh {
            q[c * gh + order(c)] = 1.0;
        }
        let q = self.given(&format!("{name}{dir} gate order"), &[gh, gh], &q, false)?;
        Ok(Some(self.g.matmul_t(wd, q, true, true)?))
    }

    /// Direction `d`'s bias `Wb + Rb` from `B: [dirs, 2·gates·H]` in wgrad's gate order;
    /// `None` without one (or an all-zero constant one).
    fn gate_bias(
        &mut self,
        n: &NodeProto,
        d: usize,
        dirs: usize,
        cell: &Cell,
        hn: usize,
        dir: &str,
    ) -> Result<Option<NodeId>> {
        if !Self::has(n, 3) {
            return Ok(None);
        }
        let name = n.input[3].clone();
        let gh = cell.gates * hn;
        let Some((dims, v)) = self.host_floats(&name) else {
            return invalid(format!("B ('{name}') must be a constant or an initializer"));
        };
        if dims != [dirs, 2 * gh] {
            return invalid(format!(
                "B ('{name}') is {dims:?}, expected [{dirs}, {}]",
                2 * gh
            ));
        }
        let mut out = vec![0.0f32; gh];
        for (theirs, &ours) in cell.blocks.iter().enumerate() {
            for j in 0..hn {
                let at = d * 2 * gh + theirs * hn + j;
                out[ours * hn + j] = v[at] + v[at + gh];
            }
        }
        let trainable = self.inits.contains_key(&name);
        if !trainable && out.iter().all(|&b| b == 0.0) {
            return Ok(None);
        }
        let name = format!("{name}{dir}");
        Ok(Some(match trainable {
            true => self.g.variable_from(&name, &[gh], &out, true)?,
            false => self.given(&name, &[gh], &out, false)?,
        }))
    }

    /// Direction `d`'s initial state from input `i` (`[dirs, batch, H]`, or
    /// `[batch, dirs, H]` in layout 1) as `[batch, H]` or `[H]`; zero when absent.
    fn initial_state(
        &mut self,
        n: &NodeProto,
        i: usize,
        d: usize,
        dirs: usize,
        layout: i64,
        hn: usize,
    ) -> Result<NodeId> {
        if !Self::has(n, i) {
            return Ok(self.g.scalar(0.0));
        }
        let name = n.input[i].clone();
        let (dir_axis, batch_axis) = if layout == 0 { (0, 1) } else { (1, 0) };
        if let Some((dims, v)) = self.host_floats(&name) {
            if dims.len() != 3 || dims[dir_axis] != dirs || dims[batch_axis] != 1 || dims[2] != hn {
                return invalid(format!(
                    "initial state '{name}' is {dims:?}: a constant one must have a batch of 1 (it is broadcast), {dirs} directions and {hn} units"
                ));
            }
            let part = v[d * hn..(d + 1) * hn].to_vec();
            let trainable = self.inits.contains_key(&name);
            let id = format!("{name}.{d}");
            return match trainable {
                true => self.g.variable_from(&id, &[hn], &part, true),
                false => self.given(&id, &[hn], &part, false),
            };
        }
        let (id, perm) = self.view_input(n, i)?;
        let s = self.g.shape(id);
        let held: Vec<Dim> = perm.iter().map(|&a| s.0[a]).collect();
        let fits = held.len() == 3
            && held[batch_axis] == Dim::Batch
            && held[dir_axis] == Dim::Fixed(dirs)
            && held[2] == Dim::Fixed(hn);
        if !fits {
            return invalid(format!(
                "initial state '{name}' is {held:?}, expected {dirs} directions, the batch and {hn} units (layout {layout})"
            ));
        }
        // [batch, dirs, H] → direction d's [batch, H].
        let bf = self.batch_first(id, &perm)?;
        let part = self.g.slice(bf, 1, d, d + 1)?;
        self.g
            .reshape(part, Shape(vec![Dim::Batch, Dim::Fixed(hn)]))
    }

    /// Sets a recurrence's outputs: `Y` (`[seq, dirs, batch, H]`, layout 1
    /// `[batch, seq, dirs, H]`), `Y_h` and `Y_c` (`[dirs, batch, H]`, layout 1
    /// `[batch, dirs, H]`), from each direction's hidden and cell states.
    fn recurrence_outputs(
        &mut self,
        n: &NodeProto,
        dirs: &[bool],
        layout: i64,
        hn: usize,
        hs: &[NodeId],
        cs: &[NodeId],
    ) -> Result<()> {
        let wanted = |k: usize| n.output.get(k).filter(|s| !s.is_empty()).cloned();
        if let Some(out) = wanted(0) {
            let all = self.concat_all(hs)?;
            let mut dims = self.g.shape(all).0[..2].to_vec();
            dims.extend([Dim::Fixed(dirs.len()), Dim::Fixed(hn)]);
            let y = self.g.reshape(all, Shape(dims))?;
            let perm = if layout == 0 {
                vec![1, 2, 0, 3]
            } else {
                vec![0, 1, 2, 3]
            };
            let v = self.normalize(y, perm)?;
            self.values.insert(out, v);
        }
        for (k, states) in [(1, hs), (2, cs)] {
            let Some(out) = wanted(k) else { continue };
            if states.is_empty() {
                return invalid("only an LSTM has a Y_c output");
            }
            let mut finals = Vec::new();
            for (&s, &backwards) in states.iter().zip(dirs) {
                // The state after the whole sequence: its last step, or its first going backwards.
                finals.push(match backwards {
                    true => self.g.sequence_first(s)?,
                    false => self.g.sequence_last(s)?,
                });
            }
            let all = self.concat_all(&finals)?;
            let y = self.g.reshape(
                all,
                Shape(vec![Dim::Batch, Dim::Fixed(dirs.len()), Dim::Fixed(hn)]),
            )?;
            let perm = if layout == 0 {
                vec![1, 0, 2]
            } else {
                vec![0, 1, 2]
            };
            let v = self.normalize(y, perm)?;
            self.values.insert(out, v);
        }
        Ok(())
    }

    fn concat_all(&self, xs: &[NodeId]) -> Result<NodeId> {
        let mut y = xs[0];
        for &x in &xs[1..] {
            y = self.g.concat(y, x, -1)?;
        }
        Ok(y)
    }

    /// `GatherND` with `batch_dims` 1 and indices `lengths − 1` (as wgrad's exports
    /// write a sequence's last step): the last step.
    pub(super) fn gather_nd(&mut self, n: &NodeProto) -> Result<NodeId> {
        let x = self.input(n, 0)?;
        let last_step = attr_int(n, "batch_dims", 0) == 1
            && self.g.sequence_axis_of(x).is_ok_and(|a| {
                let lengths = self.g.axis_lengths(a);
                self.is_last_step_index(&n.input[1], lengths)
            });
        if !last_step {
            return invalid(
                "GatherND is imported only as a sequence's last step (batch_dims 1, indices Unsqueeze(lengths − 1))",
            );
        }
        self.g.sequence_last(x)
    }

    /// Whether tensor `name` is `Unsqueeze(lengths − 1, axis -1)`, through casts.
    fn is_last_step_index(&self, name: &str, lengths: NodeId) -> bool {
        let producer = |name: &str| self.producers.get(self.source(name)).copied();
        let Some(u) = producer(name).filter(|u| u.op_type() == "Unsqueeze") else {
            return false;
        };
        let axes = match self.opset >= 13 {
            true => u.input.get(1).and_then(|a| self.ints_of(a)),
            false => attr_ints(u, "axes"),
        };
        if !matches!(axes.as_deref(), Some([1] | [-1])) {
            return false;
        }
        let Some(sub) = u.input.first().and_then(|i| producer(i)) else {
            return false;
        };
        let one = sub
            .input
            .get(1)
            .and_then(|b| self.host_floats(b))
            .is_some_and(|(_, v)| !v.is_empty() && v.iter().all(|&x| x == 1.0));
        let from_lengths = sub.input.first().is_some_and(
            |a| matches!(self.values.get(self.source(a)), Some(Value::Node(id)) if *id == lengths),
        );
        sub.op_type() == "Sub" && one && from_lengths
    }

    /// The integers of tensor `name`, if known now.
    pub(super) fn ints_of(&self, name: &str) -> Option<Vec<i64>> {
        match self.values.get(name) {
            Some(Value::Ints(v)) => Some(v.clone()),
            _ => self.inits.get(name).and_then(|t| super::ints(t).ok()),
        }
    }

    /// `Gather` on axis 1 of a sequence with index 0: its first step (`[batch, 1, ..]` for
    /// a 1-D index, `[batch, ..]` for a scalar one).
    pub(super) fn gather_first_step(&mut self, n: &NodeProto) -> Result<NodeId> {
        let x = self.input(n, 0)?;
        let idx = n.input.get(1).and_then(|i| self.ints_of(i));
        if self.g.shape(x).seq_axis().is_none() || idx.as_deref() != Some(&[0]) {
            return invalid(
                "Gather on axis 1 is imported only as a sequence's first step (index 0)",
            );
        }
        let first = self.g.sequence_first(x)?;
        let scalar = self.is_host_scalar(&n.input[1]);
        if scalar {
            return Ok(first);
        }
        let mut dims = self.g.shape(first).0;
        dims.insert(1, Dim::Fixed(1));
        self.g.reshape(first, Shape(dims))
    }
}
