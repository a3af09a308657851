//! Layouts while importing. wgrad keeps a tensor's batch axis first and its sequence axis
//! second; ONNX files also hold time-major `[seq, batch, ..]` tensors and a recurrence's
//! `[directions, batch, H]` states. Such a tensor is a view ([`Value::View`]): a wgrad node
//! and the order ONNX sees its axes in. Transposes, reshapes that keep the batch and sequence
//! axes, `Shape` and unary ops work on views; recurrences read their inputs and initial
//! states from them; other ops need the batch axis first and say so. `Shape` of a tensor is
//! known up to the batch and sequence sizes ([`Value::Dims`]) and feeds `Expand`.

use super::super::generated::NodeProto;
use super::super::proto::{attr_int, attr_ints};
use super::{invalid, Importer, Value};
use crate::graph::NodeId;
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// How many leading axes of `s` are symbolic: 0 (no batch axis), 1 (batch) or 2 (batch and
/// sequence).
fn lead(s: &Shape) -> usize {
    match (s.has_batch(), s.seq_axis()) {
        (false, _) => 0,
        (true, None) => 1,
        (true, Some(_)) => 2,
    }
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &a)| i == a)
}

fn is_permutation(perm: &[usize], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    perm.len() == rank
        && perm
            .iter()
            .all(|&a| a < rank && !std::mem::replace(&mut seen[a], true))
}

impl Importer<'_> {
    /// Input `i` of `n` as a node and the order ONNX sees its axes in (ONNX's axis `k` is
    /// the node's axis `perm[k]`).
    pub(super) fn view_input(&mut self, n: &NodeProto, i: usize) -> Result<(NodeId, Vec<usize>)> {
        let name = n.input.get(i).map_or("", String::as_str);
        if let Some(Value::View(id, perm)) = self.values.get(name) {
            return Ok((*id, perm.clone()));
        }
        let id = self.input(n, i)?;
        Ok((id, (0..self.g.shape(id).rank()).collect()))
    }

    /// Node `id` seen through `perm`: a node when the batch axis stays first and the
    /// sequence axis second (the other axes reordered by a permute, or a reshape when only
    /// size-1 axes move), a view otherwise.
    pub(super) fn normalize(&self, id: NodeId, perm: Vec<usize>) -> Result<Value> {
        let lead = lead(&self.g.shape(id));
        if is_identity(&perm[..lead.min(perm.len())]) {
            return Ok(Value::Node(self.reorder(id, &perm)?));
        }
        Ok(Value::View(id, perm))
    }

    /// Node `id` with its axes in `order` (its batch and sequence axes staying first).
    fn reorder(&self, id: NodeId, order: &[usize]) -> Result<NodeId> {
        if is_identity(order) {
            return Ok(id);
        }
        let s = self.g.shape(id);
        let moved: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&a| s.0[a] != Dim::Fixed(1))
            .collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            return self
                .g
                .reshape(id, Shape(order.iter().map(|&a| s.0[a]).collect()));
        }
        self.g.permute(id, order)
    }

    /// A view as a node with the batch axis (and sequence axis) first and the other axes in
    /// ONNX's order: how a graph output or a recurrence's state comes out.
    pub(super) fn batch_first(&self, id: NodeId, perm: &[usize]) -> Result<NodeId> {
        let lead = lead(&self.g.shape(id));
        let order: Vec<usize> = (0..lead)
            .chain(perm.iter().copied().filter(|&a| a >= lead))
            .collect();
        self.reorder(id, &order)
    }

    /// The node of graph output `name`; a view comes out batch first.
    pub(super) fn output_node(&mut self, name: &str) -> Result<NodeId> {
        match self.values.get(name) {
            Some(Value::View(id, perm)) => self.batch_first(*id, &perm.clone()),
            _ => self.node_of(name),
        }
    }

    /// Transpose: a view's order composed with `perm`.
    pub(super) fn transpose(&mut self, n: &NodeProto) -> Result<()> {
        let (id, perm) = self.view_input(n, 0)?;
        let rank = perm.len();
        let p: Vec<usize> = match attr_ints(n, "perm") {
            Some(p) => p.iter().map(|&a| a as usize).collect(),
            None => (0..rank).rev().collect(),
        };
        if !is_permutation(&p, rank) {
            return invalid(format!("perm {p:?} is not a permutation of {rank} axes"));
        }
        let composed = p.iter().map(|&a| perm[a]).collect();
        let v = self.normalize(id, composed)?;
        self.set_value(n, v);
        Ok(())
    }

    /// Flatten, Reshape, Squeeze and Unsqueeze. A constant stays one; a tensor with a batch
    /// axis keeps its batch and sequence axes where ONNX has them and reshapes the rest.
    pub(super) fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let name = n.input.first().map_or("", String::as_str);
        let is_shape = matches!(self.values.get(name), Some(Value::Ints(_) | Value::Dims(_)));
        if is_shape && matches!(n.op_type(), "Squeeze" | "Unsqueeze") {
            // Sizes are kept as one list whether ONNX holds a scalar or a 1-D tensor.
            let v = self.values[name].clone();
            self.set_value(n, v);
            return Ok(());
        }
        if let Some((d, v)) = self.host_floats(name) {
            let out = self.fixed_reshape(n, &d)?;
            self.set_value(n, Value::Floats(out, v));
            return Ok(());
        }
        let (id, perm) = self.view_input(n, 0)?;
        let s = self.g.shape(id);
        if !s.has_batch() {
            let out = self.fixed_reshape(n, &s.resolve(1))?;
            let y = self.g.reshape(id, Shape::fixed(&out))?;
            self.set(n, y);
            return Ok(());
        }
        let onnx: Vec<Dim> = perm.iter().map(|&a| s.0[a]).collect();
        let (dims, new_perm) = match n.op_type() {
            "Unsqueeze" => {
                let axes = self.axes(n, 13)?.unwrap_or_default();
                let rank = (onnx.len() + axes.len()) as i64;
                let axes: Vec<usize> = axes.iter().map(|&a| a.rem_euclid(rank) as usize).collect();
                // The new size-1 axes go last in the node, where ONNX's order puts them.
                let mut dims = s.0.clone();
                let mut old = perm.iter();
                let mut new_perm = Vec::new();
                for k in 0..rank as usize {
                    if axes.contains(&k) {
                        new_perm.push(dims.len());
                        dims.push(Dim::Fixed(1));
                    } else {
                        new_perm.push(*old.next().ok_or_else(|| {
                            Error::Invalid(format!("axes {axes:?} repeat an axis"))
                        })?);
                    }
                }
                (dims, new_perm)
            }
            "Squeeze" => {
                let rank = onnx.len() as i64;
                let axes: Vec<usize> = match self.axes(n, 13)? {
                    Some(a) => a.iter().map(|&a| a.rem_euclid(rank) as usize).collect(),
                    None => (0..onnx.len())
                        .filter(|&a| onnx[a] == Dim::Fixed(1))
                        .collect(),
                };
                if axes.iter().any(|&a| onnx[a] != Dim::Fixed(1)) {
                    return invalid(format!("axes {axes:?} of {onnx:?} are not all 1-sized"));
                }
                let gone: Vec<usize> = axes.iter().map(|&a| perm[a]).collect();
                let dims = (0..s.rank())
                    .filter(|a| !gone.contains(a))
                    .map(|a| s.0[a])
                    .collect();
                let new_perm = (0..perm.len())
                    .filter(|k| !axes.contains(k))
                    .map(|k| perm[k] - gone.iter().filter(|&&g| g < perm[k]).count())
                    .collect();
                (dims, new_perm)
            }
            _ => self.reshape_after_symbolic(n, &s, &onnx, &perm)?,
        };
        let y = self.g.reshape(id, Shape(dims))?;
        let v = self.normalize(y, new_perm)?;
        self.set_value(n, v);
        Ok(())
    }

    /// Reshape or Flatten of a tensor with a batch axis: ONNX's axes up to the last batch
    /// or sequence axis stay; the fixed axes after them are reshaped.
    fn reshape_after_symbolic(
        &self,
        n: &NodeProto,
        s: &Shape,
        onnx: &[Dim],
        perm: &[usize],
    ) -> Result<(Vec<Dim>, Vec<usize>)> {
        let t = 1 + onnx
            .iter()
            .rposition(|d| !matches!(d, Dim::Fixed(_)))
            .unwrap_or(0);
        let tail: Vec<usize> = onnx[t..].iter().map(|d| d.resolve(1)).collect();
        if !is_identity(&perm[t..].iter().map(|&a| a - t).collect::<Vec<_>>()) {
            return invalid(format!("cannot reshape a view of {s} as {onnx:?}"));
        }
        let new_tail = match n.op_type() {
            "Flatten" => {
                if t != 1 || attr_int(n, "axis", 1) != 1 {
                    return invalid(format!(
                        "Flatten of {onnx:?}: only axis 1 of a [batch, ..] tensor is supported (wgrad keeps the batch and sequence axes)"
                    ));
                }
                vec![tail.iter().product()]
            }
            _ => {
                let want = self.ints_input(n, 1)?;
                let allow_zero = attr_int(n, "allowzero", 0) != 0;
                if want.len() < t {
                    return invalid(format!("shape {want:?} drops axes of {onnx:?}"));
                }
                let inferred_tail = want[t..].contains(&-1);
                for (k, (&w, d)) in want.iter().zip(onnx).take(t).enumerate() {
                    let keeps = match d {
                        Dim::Fixed(size) => w == *size as i64 || (w == 0 && !allow_zero),
                        _ => (w == 0 && !allow_zero) || (w == -1 && !inferred_tail),
                    };
                    if !keeps {
                        return invalid(format!(
                            "shape {want:?} must keep axis {k} of {onnx:?} (wgrad keeps the batch and sequence axes and those before them)"
                        ));
                    }
                }
                reshape_tail(&tail, &want[t..], allow_zero)?
            }
        };
        let mut dims = s.0[..t].to_vec();
        dims.extend(new_tail.iter().map(|&d| Dim::Fixed(d)));
        let new_perm = perm[..t].iter().copied().chain(t..dims.len()).collect();
        Ok((dims, new_perm))
    }

    /// The output sizes of Flatten, Reshape, Squeeze or Unsqueeze `n` of a tensor of
    /// `dims` with no batch axis.
    fn fixed_reshape(&self, n: &NodeProto, dims: &[usize]) -> Result<Vec<usize>> {
        let rank = dims.len() as i64;
        Ok(match n.op_type() {
            "Flatten" => {
                let axis = attr_int(n, "axis", 1).rem_euclid(rank + 1) as usize;
                vec![dims[..axis].iter().product(), dims[axis..].iter().product()]
            }
            "Reshape" => {
                let want = self.ints_input(n, 1)?;
                reshape_tail(dims, &want, attr_int(n, "allowzero", 0) != 0)?
            }
            "Unsqueeze" => {
                let axes = self.axes(n, 13)?.unwrap_or_default();
                let out_rank = rank + axes.len() as i64;
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| a.rem_euclid(out_rank) as usize)
                    .collect();
                axes.sort_unstable();
                let mut d = dims.to_vec();
                for a in axes {
                    d.insert(a.min(d.len()), 1);
                }
                d
            }
            _ => {
                let axes: Vec<usize> = match self.axes(n, 13)? {
                    Some(a) => a.iter().map(|&a| a.rem_euclid(rank) as usize).collect(),
                    None => (0..dims.len()).filter(|&a| dims[a] == 1).collect(),
                };
                if axes.iter().any(|&a| dims[a] != 1) {
                    return invalid(format!("axes {axes:?} of {dims:?} are not all 1-sized"));
                }
                (0..dims.len())
                    .filter(|a| !axes.contains(a))
                    .map(|a| dims[a])
                    .collect()
            }
        })
    }

    /// The dims and values of tensor `name` when they are known now (a `Constant` or an
    /// initializer not yet made a node).
    pub(super) fn host_floats(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        match self.values.get(name) {
            Some(Value::Floats(d, v)) => Some((d.clone(), v.clone())),
            Some(_) => None,
            None => {
                let t = self.inits.get(name)?;
                Some((super::dims(t).ok()?, super::floats(t).ok()?))
            }
        }
    }

    /// Input `i` of `n` as a shape known now (integers, or `Shape` of a tensor).
    pub(super) fn host_shape_input(&self, n: &NodeProto, i: usize) -> Option<Vec<Dim>> {
        let name = n.input.get(i)?;
        if let Some(Value::Dims(d)) = self.values.get(name) {
            return Some(d.clone());
        }
        self.ints_of(name)?
            .iter()
            .map(|&x| (x >= 0).then_some(Dim::Fixed(x as usize)))
            .collect()
    }

    /// Whether every input of `n` is a shape known now.
    pub(super) fn all_host_shapes(&self, n: &NodeProto) -> bool {
        (0..n.input.len()).all(|i| self.host_shape_input(n, i).is_some())
    }

    fn set_shape(&mut self, n: &NodeProto, d: Vec<Dim>) {
        let fixed: Option<Vec<i64>> = d
            .iter()
            .map(|d| match d {
                Dim::Fixed(k) => Some(*k as i64),
                _ => None,
            })
            .collect();
        self.set_value(
            n,
            match fixed {
                Some(v) => Value::Ints(v),
                None => Value::Dims(d),
            },
        );
    }

    /// `Shape`: the sizes of a tensor in ONNX's order (`start`/`end` pick a range).
    pub(super) fn shape_of(&mut self, n: &NodeProto) -> Result<()> {
        let name = n.input.first().map_or("", String::as_str);
        let dims: Vec<Dim> = match (self.host_floats(name), self.values.get(name)) {
            (Some((d, _)), _) => d.iter().map(|&k| Dim::Fixed(k)).collect(),
            (None, Some(Value::Ints(v))) => vec![Dim::Fixed(v.len())],
            (None, Some(Value::Dims(d))) => vec![Dim::Fixed(d.len())],
            _ => {
                let (id, perm) = self.view_input(n, 0)?;
                let s = self.g.shape(id);
                perm.iter().map(|&a| s.0[a]).collect()
            }
        };
        let rank = dims.len() as i64;
        let at = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let (b, e) = (at(attr_int(n, "start", 0)), at(attr_int(n, "end", rank)));
        self.set_shape(n, dims[b..e.max(b)].to_vec());
        Ok(())
    }

    /// `Concat` of shapes known now.
    pub(super) fn concat_shapes(&mut self, n: &NodeProto) -> Result<()> {
        let mut out = Vec::new();
        for i in 0..n.input.len() {
            out.extend(self.host_shape_input(n, i).unwrap_or_default());
        }
        self.set_shape(n, out);
        Ok(())
    }

    /// `Gather` from a shape known now, by indices known now.
    pub(super) fn gather_shape(&mut self, n: &NodeProto) -> Result<()> {
        let d = self.host_shape_input(n, 0).unwrap_or_default();
        let idx = self.ints_input(n, 1)?;
        let len = d.len() as i64;
        let mut out = Vec::new();
        for i in idx {
            let k = if i < 0 { i + len } else { i };
            match d.get(k as usize) {
                Some(x) if k >= 0 => out.push(*x),
                _ => return invalid(format!("index {i} is outside shape {d:?}")),
            }
        }
        self.set_shape(n, out);
        Ok(())
    }

    /// `Expand` to a shape known now: ONNX's broadcast. A target with its batch axis
    /// elsewhere than first (`[directions, batch, H]`) is expanded batch first and held as
    /// a view.
    pub(super) fn expand(&mut self, n: &NodeProto) -> Result<()> {
        let Some(target) = self.host_shape_input(n, 1) else {
            return invalid(
                "the shape must be known when importing (constants and Shape of tensors)",
            );
        };
        let x = self.input(n, 0)?;
        let sx = self.g.shape(x);
        let r = sx.rank().max(target.len());
        let pick = |d: &[Dim], i: usize| match i + d.len() >= r {
            true => d[i + d.len() - r],
            false => Dim::Fixed(1),
        };
        let mut out = Vec::with_capacity(r);
        for i in 0..r {
            let (a, b) = (pick(&sx.0, i), pick(&target, i));
            out.push(match (a, b) {
                (a, Dim::Fixed(1)) => a,
                (Dim::Fixed(1), b) => b,
                (a, b) if a == b => a,
                _ => return invalid(format!("{sx} does not expand to {target:?}")),
            });
        }
        let at = out.iter().position(|d| *d == Dim::Batch).unwrap_or(0);
        if at == 0 || sx.has_batch() || out.iter().any(|d| matches!(d, Dim::Seq(_))) {
            let y = self.g.expand(x, Shape(out))?;
            self.set(n, y);
            return Ok(());
        }
        // x has no batch axis: bring its axis `at` (size 1) first, expand, and view.
        let xr = self
            .g
            .reshape(x, Shape((0..r).map(|i| pick(&sx.0, i)).collect()))?;
        let order: Vec<usize> = std::iter::once(at)
            .chain((0..r).filter(|&i| i != at))
            .collect();
        let xf = self.reorder(xr, &order)?;
        let y = self
            .g
            .expand(xf, Shape(order.iter().map(|&i| out[i]).collect()))?;
        // ONNX's axis i is y's axis where `order` put it.
        let perm = (0..r)
            .map(|i| order.iter().position(|&o| o == i).unwrap_or(0))
            .collect();
        let v = self.normalize(y, perm)?;
        self.set_value(n, v);
        Ok(())
    }

    /// Whether tensor `name` is a scalar known now (a 0-D initializer or `Constant`).
    pub(super) fn is_host_scalar(&self, name: &str) -> bool {
        let dims = match self.producers.get(name) {
            Some(c) if c.op_type() == "Constant" => super::attr(c, "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.dims.clone()),
            _ => self.inits.get(name).map(|t| t.dims.clone()),
        };
        dims.is_some_and(|d| d.is_empty())
    }

    /// `Gather` by indices known now along a fixed axis of a tensor with a batch axis (a
    /// view's directions, say): slices. `None` when it is not such a gather.
    pub(super) fn gather_fixed(&mut self, n: &NodeProto) -> Result<Option<Value>> {
        let name = n.input.first().map_or("", String::as_str);
        let Some(idx) = n.input.get(1).and_then(|i| self.ints_of(i)) else {
            return Ok(None);
        };
        let node = match self.values.get(name) {
            Some(Value::View(id, _)) | Some(Value::Node(id)) => *id,
            _ => return Ok(None),
        };
        if !self.g.shape(node).has_batch() {
            return Ok(None);
        }
        let (id, perm) = self.view_input(n, 0)?;
        let s = self.g.shape(id);
        let axis = attr_int(n, "axis", 0).rem_euclid(perm.len() as i64) as usize;
        let Dim::Fixed(size) = s.0[perm[axis]] else {
            return Ok(None);
        };
        let a = perm[axis];
        let mut y = None;
        for &i in &idx {
            let k = if i < 0 { i + size as i64 } else { i };
            if k < 0 || k >= size as i64 {
                return invalid(format!("index {i} is outside axis {axis} of size {size}"));
            }
            let part = self.g.slice(id, a as isize, k as usize, k as usize + 1)?;
            y = Some(match y {
                None => part,
                Some(prev) => self.g.concat(prev, part, a as isize)?,
            });
        }
        let Some(mut y) = y else {
            return invalid("no indices");
        };
        let mut perm = perm;
        if self.is_host_scalar(&n.input[1]) {
            // A scalar index drops the axis.
            let mut dims = self.g.shape(y).0;
            dims.remove(a);
            y = self.g.reshape(y, Shape(dims))?;
            perm.remove(axis);
            perm.iter_mut().filter(|p| **p > a).for_each(|p| *p -= 1);
        }
        self.normalize(y, perm).map(Some)
    }
}

/// ONNX Reshape's sizes for a tensor of `dims` from `want` (`0` copies the size at its
/// position unless `allow_zero`, one `-1` is inferred).
pub(super) fn reshape_tail(dims: &[usize], want: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(want.len());
    let mut infer = None;
    for (i, &d) in want.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => match dims.get(i) {
                Some(&s) => out.push(s),
                None => return invalid(format!("shape {want:?}: 0 past the input's axes")),
            },
            d if d >= 0 => out.push(d as usize),
            _ => return invalid(format!("shape {want:?} is not a valid ONNX shape")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return invalid(format!("shape {want:?} does not divide {total} elements"));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return invalid(format!("shape {want:?} does not hold {dims:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::reshape_tail;

    #[test]
    fn reshape_tail_infers_copies_and_checks() {
        assert_eq!(reshape_tail(&[2, 3, 4], &[24], false).unwrap(), vec![24]);
        assert_eq!(
            reshape_tail(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(
            reshape_tail(&[2, 3, 4], &[6, 4], false).unwrap(),
            vec![6, 4]
        );
        assert_eq!(reshape_tail(&[], &[1, 1], false).unwrap(), vec![1, 1]);
        assert!(reshape_tail(&[2, 3, 4], &[-1, -1], false).is_err());
        assert!(reshape_tail(&[2, 3, 4], &[5, -1], false).is_err());
        assert!(reshape_tail(&[2, 3, 4], &[0, 7], false).is_err());
        assert!(reshape_tail(&[2, 3, 4], &[-2, 12], false).is_err());
        assert!(reshape_tail(&[2, 3, 4], &[0, 0, 0, 0], false).is_err());
    }
}
