//! General recurrences: a scan over a sequence axis whose step is built once from graph
//! nodes ([`Graph::recurrence`], CNTK's `Recurrence(step_function)`, JAX's `lax.scan`),
//! with backpropagation through time as a second scan that runs the same step backwards.
//!
//! The step function is called once, on [`Op::StepValue`] nodes that stand for one step of
//! each input sequence and for the states before the step; the nodes it makes that depend on
//! them are the body, which the planner runs once per step (plan/scan.rs). The gradient
//! rule builds the reverse scan: per step, from the recorded states, it recomputes the body
//! and applies its vector–Jacobian product, carrying the gradient that reaches the previous
//! states and summing the gradients of parameters and other values the body reads.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op, ScanCarry, ScanSpec};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

const OP: &str = "recurrence";

impl Graph {
    /// A recurrence over sequences: `step(g, xs, states)` builds one step from the step
    /// values `xs` (one `[batch, ..]` step of each of `inputs`, all sequences of one axis)
    /// and the states before the step, and returns the states after it, shaped like them.
    /// It is called once; what it builds runs at every step (the plan does not grow with
    /// the length). `initial` holds each state's value before the first step: `[batch, ..]`,
    /// or `[..]` shared by every sequence (a parameter makes a learned initial state). A
    /// sequence whose steps are over keeps its states; with `backwards` each sequence runs
    /// from its last step down (CNTK's `go_backwards`). Returns each state at every step,
    /// `[batch, seq, ..]`, zeros at padding steps.
    ///
    /// The step may read any node of the graph that is not a sequence (parameters,
    /// per-sequence values); their gradients, the inputs' and the initial states' come from
    /// backpropagation through time. Dropout inside a step draws one mask for every step.
    ///
    /// ```
    /// # fn main() -> wgrad::Result<()> {
    /// use wgrad::{Graph, Init};
    /// let g = Graph::new();
    /// let x = g.input_sequence("x", &[3])?;
    /// let w = g.parameter("w", &[3, 4], Init::GlorotUniform)?;
    /// let u = g.parameter("u", &[4, 4], Init::GlorotUniform)?;
    /// // A plain RNN: h' = tanh(x·w + h·u), from h = 0.
    /// let h0 = g.constant(0.0, &[4]);
    /// let hs = g.recurrence(&[x], &[h0], false, |g, xs, hs| {
    ///     Ok(vec![g.tanh(g.add(g.matmul(xs[0], w)?, g.matmul(hs[0], u)?)?)?])
    /// })?;
    /// let last = g.sequence_last(hs[0])?;
    /// assert_eq!(g.shape(last), wgrad::shape::Shape::batched(&[4]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// No inputs or states, inputs on different sequence axes or not sequences, a state
    /// the step returns with another shape, or a step that makes a sequence tensor.
    pub fn recurrence<F>(
        &self,
        inputs: &[NodeId],
        initial: &[NodeId],
        backwards: bool,
        step: F,
    ) -> Result<Vec<NodeId>>
    where
        F: FnOnce(&Graph, &[NodeId], &[NodeId]) -> Result<Vec<NodeId>>,
    {
        if inputs.is_empty() || initial.is_empty() {
            return shape_err(OP, "needs at least one sequence input and one state");
        }
        let mut axis = None;
        let mut step_shapes = Vec::new();
        for &x in inputs {
            let (s, _) = self.sequence_operand(OP, x)?;
            if axis.is_some_and(|k| Some(k) != s.seq_axis()) {
                return shape_err(OP, "every input must be on the same sequence axis");
            }
            axis = s.seq_axis();
            step_shapes.push(Graph::step_shape(&s));
        }
        let axis = axis.expect("checked inputs");
        let mut inits = Vec::new();
        for (k, &h) in initial.iter().enumerate() {
            let s = self.check(OP, h)?;
            if s.has_seq() || (s.has_batch() && s.0[0] != Dim::Batch) {
                return shape_err(
                    OP,
                    format!("initial state {k} must be [batch, ..] or [..], got {s}"),
                );
            }
            let state = if s.has_batch() {
                s.clone()
            } else {
                Shape([vec![Dim::Batch], s.0.clone()].concat())
            };
            let init = if state == s {
                h
            } else {
                self.expand(h, state.clone())?
            };
            inits.push((init, state));
        }
        let xs: Vec<NodeId> = step_shapes
            .into_iter()
            .map(|s| self.push(Op::StepValue, s))
            .collect();
        let hs: Vec<NodeId> = inits
            .iter()
            .map(|(_, s)| self.push(Op::StepValue, s.clone()))
            .collect();
        let next = step(self, &xs, &hs)?;
        if next.len() != hs.len() {
            return shape_err(
                OP,
                format!(
                    "the step returned {} states for {} initial states",
                    next.len(),
                    hs.len()
                ),
            );
        }
        let mut carries = Vec::new();
        for (k, (&n, &(init, ref state))) in next.iter().zip(&inits).enumerate() {
            let s = self.check(OP, n)?;
            if s != *state {
                return shape_err(
                    OP,
                    format!("the step returned state {k} as {s}, its initial state is {state}"),
                );
            }
            carries.push(ScanCarry {
                init,
                value: hs[k],
                next: n,
                masked: true,
                recorded: true,
            });
        }
        let steps = inputs.iter().copied().zip(xs).collect();
        let spec = self.scan_spec(steps, carries, Vec::new(), axis, backwards, false)?;
        let scan = self.push_scan(spec, axis)?;
        let shapes: Vec<Shape> = inits.into_iter().map(|(_, s)| s).collect();
        self.scan_parts(scan, &shapes, 0)
    }

    /// The spec of a scan with these steps, carries and emits: its body and what it
    /// captures, checked.
    fn scan_spec(
        &self,
        steps: Vec<(NodeId, NodeId)>,
        carries: Vec<ScanCarry>,
        emits: Vec<NodeId>,
        axis: u8,
        backwards: bool,
        reverse: bool,
    ) -> Result<ScanSpec> {
        let mut values: Vec<NodeId> = steps.iter().map(|s| s.1).collect();
        values.extend(carries.iter().map(|c| c.value));
        let mut outs: Vec<NodeId> = carries.iter().map(|c| c.next).collect();
        outs.extend(&emits);
        let (body, captured) = self.scan_body(&values, &outs)?;
        Ok(ScanSpec {
            steps,
            carries,
            emits,
            captured,
            body,
            lengths: self.lengths_of_axis(axis),
            backwards,
            reverse,
        })
    }

    /// The nodes that `outs` need and that depend on `values` (the body, in graph order),
    /// and the other nodes the body reads (captured).
    fn scan_body(&self, values: &[NodeId], outs: &[NodeId]) -> Result<(Vec<NodeId>, Vec<NodeId>)> {
        let nodes = self.nodes();
        let n = nodes.len();
        let lo = values.iter().map(|v| v.0).min().unwrap_or(n);
        // Depends on a step value (scans are opaque: their bodies are their own).
        let mut inside = vec![false; n];
        for v in values {
            inside[v.0] = true;
        }
        for i in lo..n {
            if !inside[i] && !matches!(nodes[i].op, Op::Scan(_) | Op::ScanFinal { .. }) {
                inside[i] = nodes[i].op.inputs().iter().any(|j| inside[j.0]);
            }
        }
        // Needed by the outputs.
        let mut need = vec![false; n];
        for o in outs {
            need[o.0] = inside[o.0];
        }
        for i in (lo..n).rev() {
            if need[i] && !matches!(nodes[i].op, Op::StepValue) {
                for j in nodes[i].op.inputs() {
                    if inside[j.0] {
                        need[j.0] = true;
                    }
                }
            }
        }
        let values: HashSet<usize> = values.iter().map(|v| v.0).collect();
        let body: Vec<NodeId> = (lo..n)
            .filter(|&i| need[i] && !values.contains(&i))
            .map(NodeId::at)
            .collect();
        let mut captured: Vec<NodeId> = Vec::new();
        for b in &body {
            let node = &nodes[b.0];
            if node.shape.has_seq() {
                return shape_err(
                    OP,
                    format!(
                        "the step made node {} ({:?}) of shape {} over a sequence axis; a step \
                         reads sequences only through its step values",
                        b.0,
                        op_name(&node.op),
                        node.shape
                    ),
                );
            }
            for j in node.op.inputs() {
                if !inside[j.0] && !captured.contains(&j) {
                    if nodes[j.0].shape.has_seq() {
                        return shape_err(
                            OP,
                            format!(
                                "the step reads node {} of shape {}, a whole sequence; pass it \
                                 as an input to read one step at a time",
                                j.0, nodes[j.0].shape
                            ),
                        );
                    }
                    captured.push(j);
                }
            }
        }
        Ok((body, captured))
    }

    /// Adds the scan node: the recorded values side by side, `[batch, seq, width]`.
    fn push_scan(&self, spec: ScanSpec, axis: u8) -> Result<NodeId> {
        let per_sample = |x: NodeId| self.shape(x).per_sample();
        let width: usize = spec
            .carries
            .iter()
            .filter(|c| c.recorded)
            .map(|c| per_sample(c.value))
            .chain(spec.emits.iter().map(|&e| per_sample(e)))
            .sum();
        if width == 0 {
            return shape_err(OP, "a scan records nothing");
        }
        let shape = Shape(vec![Dim::Batch, Dim::Seq(axis), Dim::Fixed(width)]);
        Ok(self.push(Op::Scan(Arc::new(spec)), shape))
    }

    /// The recorded parts of `scan` from float `offset` of each step, one per shape
    /// (`[batch, ..]` step shapes), as sequences `[batch, seq, ..]`.
    fn scan_parts(&self, scan: NodeId, shapes: &[Shape], offset: usize) -> Result<Vec<NodeId>> {
        let k = self.shape(scan).seq_axis().expect("a scan is a sequence");
        let mut at = offset;
        let mut parts = Vec::new();
        for s in shapes {
            let n = s.per_sample();
            let part = self.slice(scan, -1, at, at + n)?;
            let seq = Graph::sequence_shape(OP, s, k)?;
            parts.push(if seq.rank() == 3 {
                part
            } else {
                self.reshape(part, seq)?
            });
            at += n;
        }
        Ok(parts)
    }

    /// Zeros of shape `s` (with or without a batch axis).
    fn zeros(&self, s: &Shape) -> Result<NodeId> {
        if s.has_batch() {
            self.expand(self.scalar(0.0), s.clone())
        } else {
            Ok(self.constant(0.0, &s.resolve(1)))
        }
    }

    /// The gradient rule of scans: backpropagation through time as a reverse scan.
    pub(crate) fn grad_scan(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let spec = match op {
            Op::StepValue => return Ok(Vec::new()),
            Op::Scan(spec) => spec.clone(),
            _ => {
                return Err(Error::Invalid(
                    "recurrence: second derivatives through a recurrence are not supported".into(),
                ))
            }
        };
        if spec.reverse || spec.carries.iter().any(|c| !c.masked || !c.recorded) {
            return Err(Error::Invalid(
                "recurrence: second derivatives through a recurrence are not supported".into(),
            ));
        }
        let axis = self.shape(out).seq_axis().expect("a scan is a sequence");
        // The states before each step: the recorded states shifted by one step.
        let shapes: Vec<Shape> = spec.carries.iter().map(|c| self.shape(c.value)).collect();
        let states = self.scan_parts(out, &shapes, 0)?;
        let mut steps = spec.steps.clone();
        for (c, &s) in spec.carries.iter().zip(&states) {
            let prev = match spec.backwards {
                false => self.past_value(s, c.init)?,
                true => self.future_value(s, c.init)?,
            };
            steps.push((prev, c.value));
        }
        // This step's gradient of the recorded states, and the gradient reaching them from
        // the step after (the reverse scan's carries).
        let g_step = self.push(Op::StepValue, Graph::step_shape(&self.shape(g)));
        steps.push((g, g_step));
        let later: Vec<NodeId> = shapes
            .iter()
            .map(|s| self.push(Op::StepValue, s.clone()))
            .collect();
        let captured: Vec<NodeId> = spec
            .captured
            .iter()
            .copied()
            .filter(|&c| wants(c))
            .collect();
        let sums: Vec<NodeId> = captured
            .iter()
            .map(|&c| self.push(Op::StepValue, self.shape(c)))
            .collect();
        let mut seeds = Vec::new();
        let mut at = 0;
        for (k, c) in spec.carries.iter().enumerate() {
            let n = shapes[k].per_sample();
            let mut gk = self.slice(g_step, -1, at, at + n)?;
            if shapes[k].rank() != 2 {
                gk = self.reshape(gk, shapes[k].clone())?;
            }
            seeds.push((c.next, self.add(gk, later[k])?));
            at += n;
        }
        let mut wrt: Vec<NodeId> = spec.steps.iter().map(|s| s.1).collect();
        wrt.extend(spec.carries.iter().map(|c| c.value));
        wrt.extend(&captured);
        let d = self.vjp(&seeds, &wrt)?;
        let ns = spec.steps.len();
        let nc = spec.carries.len();
        let mut carries = Vec::new();
        for k in 0..nc {
            let next = match d[ns + k] {
                Some(x) => x,
                None => self.zeros(&shapes[k])?,
            };
            carries.push(ScanCarry {
                init: self.zeros(&shapes[k])?,
                value: later[k],
                next,
                masked: true,
                recorded: true,
            });
        }
        // Each summed gradient: its captured node and its carry.
        let mut summed = Vec::new();
        for (j, &c) in captured.iter().enumerate() {
            if let Some(dc) = d[ns + nc + j] {
                summed.push((c, carries.len()));
                carries.push(ScanCarry {
                    init: self.zeros(&self.shape(c))?,
                    value: sums[j],
                    next: self.add(sums[j], dc)?,
                    masked: false,
                    recorded: false,
                });
            }
        }
        let mut emits = Vec::new();
        let mut emitted = Vec::new();
        for (i, &(x, v)) in spec.steps.iter().enumerate() {
            if let (true, Some(dx)) = (wants(x), d[i]) {
                emits.push(dx);
                emitted.push((x, self.shape(v)));
            }
        }
        let back = self.scan_spec(steps, carries, emits, axis, spec.backwards, true)?;
        let back = self.push_scan(back, axis)?;
        let mut result = Vec::new();
        for (k, c) in spec.carries.iter().enumerate() {
            if wants(c.init) {
                let fin = self.push(
                    Op::ScanFinal {
                        scan: back,
                        carry: k,
                    },
                    shapes[k].clone(),
                );
                result.push((c.init, fin));
            }
        }
        for (c, carry) in summed {
            let fin = self.push(Op::ScanFinal { scan: back, carry }, self.shape(c));
            result.push((c, fin));
        }
        let width: usize = shapes.iter().map(|s| s.per_sample()).sum();
        let step_shapes: Vec<Shape> = emitted.iter().map(|e| e.1.clone()).collect();
        let dxs = self.scan_parts(back, &step_shapes, width)?;
        for ((x, _), dx) in emitted.into_iter().zip(dxs) {
            result.push((x, dx));
        }
        Ok(result)
    }
}

/// The variant name of an op, for error messages.
fn op_name(op: &Op) -> String {
    let s = format!("{op:?}");
    s.split([' ', '(', '{']).next().unwrap_or("").to_string()
}
