//! Data movement: reshape, permute, concat, slice (and its adjoint, pad), one-hot, with
//! their gradient rules.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::{Dim, Shape};
use crate::Result;

impl Graph {
    /// Same data viewed with another shape of equal size (the batch axis must stay).
    pub fn reshape(&self, x: NodeId, shape: Shape) -> Result<NodeId> {
        let s = self.check("reshape", x)?;
        let batches = |sh: &Shape| sh.0.iter().filter(|d| **d == Dim::Batch).count();
        // A sequence axis stays where it is, right after the batch axis.
        let seq_ok = |sh: &Shape| {
            let seqs = sh.0.iter().filter(|d| matches!(d, Dim::Seq(_))).count();
            seqs == 0 || (seqs == 1 && sh.seq_axis().is_some())
        };
        if batches(&s) != batches(&shape)
            || s.seq_axis() != shape.seq_axis()
            || !seq_ok(&shape)
            || s.per_sample() != shape.per_sample()
        {
            return shape_err("reshape", format!("cannot reshape {s} to {shape}"));
        }
        if s == shape {
            return Ok(x);
        }
        Ok(self.push(Op::Reshape { x }, shape))
    }

    /// Reorders axes: output axis k is input axis `perm[k]` (numpy's `transpose`).
    pub fn permute(&self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        let s = self.check("permute", x)?;
        let mut seen = vec![false; s.rank()];
        if perm.len() != s.rank()
            || perm
                .iter()
                .any(|&a| a >= s.rank() || std::mem::replace(&mut seen[a], true))
        {
            return shape_err(
                "permute",
                format!("{perm:?} is not a permutation of the axes of {s}"),
            );
        }
        if perm.iter().enumerate().all(|(k, &a)| k == a) {
            return Ok(x);
        }
        let out = Shape(perm.iter().map(|&a| s.0[a]).collect());
        Ok(self.push(
            Op::Permute {
                x,
                perm: perm.to_vec(),
            },
            out,
        ))
    }

    /// `xs` (at least one, all of one shape) stacked along a new axis `axis` (0 ..= rank;
    /// negative counts from the end, -1 appending it last): numpy's `stack`.
    pub fn stack(&self, xs: &[NodeId], axis: isize) -> Result<NodeId> {
        let Some(&first) = xs.first() else {
            return shape_err("stack", "needs at least one tensor".to_string());
        };
        let s = self.check("stack", first)?;
        for &x in xs {
            let sx = self.check("stack", x)?;
            if sx != s {
                return shape_err("stack", format!("shapes differ: {s} and {sx}"));
            }
        }
        let rank = s.rank() as isize;
        let at = if axis < 0 { axis + rank + 1 } else { axis };
        if !(0..=rank).contains(&at) {
            return shape_err(
                "stack",
                format!("axis {axis} is outside 0..={rank} for {s}"),
            );
        }
        let mut dims = s.0.clone();
        dims.insert(at as usize, Dim::Fixed(1));
        let mut out = self.reshape(first, Shape(dims.clone()))?;
        for &x in &xs[1..] {
            out = self.concat(out, self.reshape(x, Shape(dims.clone()))?, at)?;
        }
        Ok(out)
    }

    /// Rows of `table: [V, D]` picked by `indices` (floats holding row numbers, any shape
    /// `[..]`): `[.., D]`. A fed index that is not a whole number in `0..V` is a feed error
    /// (a computed one gives a zero row). The table's gradient
    /// sums the incoming rows per index; the indices get none.
    pub fn embedding(&self, indices: NodeId, table: NodeId) -> Result<NodeId> {
        let (si, st) = (
            self.check("embedding", indices)?,
            self.check("embedding", table)?,
        );
        if st.rank() != 2 || st.has_batch() {
            return shape_err(
                "embedding",
                format!("the table must be [rows, dim], got {st}"),
            );
        }
        let mut s = si.clone();
        s.0.push(st.0[1]);
        Ok(self.push(Op::GatherRows { table, indices }, s))
    }

    /// The table gradient of an embedding: `[rows, D]` from `g: [.., D]`.
    pub(crate) fn scatter_rows(&self, indices: NodeId, g: NodeId, rows: usize) -> NodeId {
        let d = *self.shape(g).0.last().expect("a row axis");
        self.push(
            Op::ScatterRows { indices, g },
            Shape(vec![Dim::Fixed(rows), d]),
        )
    }

    /// `a` and `b` joined along `axis` (CNTK's `splice`); other axes must match.
    pub fn concat(&self, a: NodeId, b: NodeId, axis: isize) -> Result<NodeId> {
        let (sa, sb) = (self.check("concat", a)?, self.check("concat", b)?);
        let ax = sa.axis("concat", axis)?;
        let same_rank = sa.rank() == sb.rank();
        if !same_rank || (0..sa.rank()).any(|i| i != ax && sa.0[i] != sb.0[i]) {
            return shape_err("concat", format!("{sa} and {sb} differ off axis {ax}"));
        }
        let (Dim::Fixed(la), Dim::Fixed(lb)) = (sa.0[ax], sb.0[ax]) else {
            return shape_err(
                "concat",
                "cannot concatenate along the batch axis".to_string(),
            );
        };
        let mut s = sa.clone();
        s.0[ax] = Dim::Fixed(la + lb);
        Ok(self.push(Op::Concat { a, b, axis: ax }, s))
    }

    /// Elements `begin..end` of `x` along `axis`.
    pub fn slice(&self, x: NodeId, axis: isize, begin: usize, end: usize) -> Result<NodeId> {
        let s = self.check("slice", x)?;
        let ax = s.axis("slice", axis)?;
        let Dim::Fixed(len) = s.0[ax] else {
            return shape_err("slice", "cannot slice the batch axis".to_string());
        };
        if begin >= end || end > len {
            return shape_err(
                "slice",
                format!("range {begin}..{end} is empty or outside axis {ax} of {s}"),
            );
        }
        let mut out = s.clone();
        out.0[ax] = Dim::Fixed(end - begin);
        Ok(self.push(Op::Slice { x, axis: ax, begin }, out))
    }

    pub(crate) fn pad_to(&self, x: NodeId, axis: usize, begin: usize, shape: Shape) -> NodeId {
        self.push(Op::Pad { x, axis, begin }, shape)
    }

    /// One-hot rows `[.., classes]` from class indices stored as floats (`[..]`); a fed
    /// index that is not a whole number in `0..classes` is a feed error (a computed one gives
    /// a zero row).
    pub fn one_hot(&self, indices: NodeId, classes: usize) -> Result<NodeId> {
        let mut s = self.check("one_hot", indices)?;
        if classes == 0 {
            return shape_err("one_hot", "needs at least one class".to_string());
        }
        s.0.push(Dim::Fixed(classes));
        Ok(self.push(Op::OneHot { x: indices }, s))
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_movement(
        &self,
        _out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::Reshape { x } => res.push((x, self.reshape(g, shape(x))?)),
            Op::Permute { x, ref perm } => {
                let mut inverse = vec![0; perm.len()];
                for (k, &a) in perm.iter().enumerate() {
                    inverse[a] = k;
                }
                res.push((x, self.permute(g, &inverse)?));
            }
            Op::Concat { a, b, axis } => {
                let la = shape(a).0[axis].resolve(0);
                let lb = shape(b).0[axis].resolve(0);
                if wants(a) {
                    res.push((a, self.slice(g, axis as isize, 0, la)?));
                }
                if wants(b) {
                    res.push((b, self.slice(g, axis as isize, la, la + lb)?));
                }
            }
            Op::Slice { x, axis, begin } => res.push((x, self.pad_to(g, axis, begin, shape(x)))),
            Op::Pad { x, axis, begin } => {
                let len = shape(x).0[axis].resolve(0);
                res.push((x, self.slice(g, axis as isize, begin, begin + len)?));
            }
            // The same mask (same seed, same step) applied to the gradient.
            Op::OneHot { .. } => {}
            Op::GatherRows { table, indices } => {
                if wants(table) {
                    let rows = shape(table).0[0].resolve(0);
                    res.push((table, self.scatter_rows(indices, g, rows)));
                }
            }
            // Linear in g: its adjoint gathers the rows back.
            Op::ScatterRows { indices, g: rows } => {
                if wants(rows) {
                    res.push((
                        rows,
                        self.push(Op::GatherRows { table: g, indices }, shape(rows)),
                    ));
                }
            }
            _ => unreachable!("grad_movement takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
