//! Import of an ONNX model into a [`Graph`]: one or a few wgrad nodes per ONNX node, in the
//! file's (topological) order. Float initializers become parameters that start from the
//! file's values, made when first used: trainable, except those that only hold running
//! statistics (BatchNormalization's mean and variance), which become state. Integer tensors
//! (shapes, axes, slice bounds) and `Constant`s stay on the host as the arguments they are.
//! Views of batch-first tensors and shapes known up to the batch size: `layout.rs`;
//! sequence inputs, recurrences and sequence steps: `sequences.rs`.

use std::collections::HashMap;

mod layout;
mod sequences;

use super::generated::tensor_proto::DataType;
use super::generated::{ModelProto, NodeProto, TensorProto};
use super::proto::{attr, attr_float, attr_int, attr_ints, attr_string, dims, floats, ints};
use super::Model;
use crate::graph::{BinaryOp, Graph, NodeId, ReduceOp, UnaryOp};
use crate::ops::{Padding, WindowOpts};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// What an ONNX tensor name stands for while importing.
#[derive(Clone)]
enum Value {
    /// A wgrad node.
    Node(NodeId),
    /// A wgrad node whose axes ONNX holds in another order: ONNX's axis `i` is the node's
    /// axis `perm[i]` (a time-major `[seq, batch, ..]` tensor, a recurrence's
    /// `[directions, batch, H]` states); wgrad keeps the batch axis first.
    View(NodeId, Vec<usize>),
    /// Integers known when importing (a shape, axes).
    Ints(Vec<i64>),
    /// Floats known when importing (a `Constant`): dims and values.
    Floats(Vec<usize>, Vec<f32>),
    /// A shape known up to its batch and sequence sizes (`Shape` of a tensor).
    Dims(Vec<Dim>),
}

/// Builds the model of `proto`.
pub(crate) fn model(proto: &ModelProto) -> Result<Model> {
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map_or(1, |o| o.version());
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::Invalid("onnx: the model has no graph".into()))?;
    let mut im = Importer {
        g: Graph::new(),
        values: HashMap::new(),
        inits: graph
            .initializer
            .iter()
            .map(|t| (t.name().to_string(), t))
            .collect(),
        producers: graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| (o.clone(), n)))
            .collect(),
        host_nodes: HashMap::new(),
        opset,
    };
    let inputs = im.inputs(graph)?;
    for n in &graph.node {
        im.node(n).map_err(|e| at_node(n, e))?;
    }
    let mut outputs = Vec::new();
    for o in &graph.output {
        let id = im.output_node(o.name()).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("onnx: graph output {m}")),
            other => other,
        })?;
        outputs.push((o.name().to_string(), id));
    }
    if outputs.is_empty() {
        return Err(Error::Invalid("onnx: the graph has no outputs".into()));
    }
    Ok(Model {
        graph: im.g,
        inputs,
        outputs,
    })
}

/// An error of node `n`, its message prefixed with the node's name and op type.
fn at_node(n: &NodeProto, e: Error) -> Error {
    let whence = format!("onnx node '{}' ({})", n.name(), n.op_type());
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{whence}: {m}")),
        Error::Shape { op, msg } => Error::Invalid(format!("{whence}: {op}: {msg}")),
        other => other,
    }
}

/// Refuses a graph input whose elements wgrad cannot feed.
fn check_input_type(name: &str, elem: Option<i32>) -> Result<()> {
    let elem = elem.and_then(|e| DataType::try_from(e).ok());
    if !matches!(
        elem,
        Some(DataType::Float | DataType::Int64 | DataType::Int32)
    ) {
        return invalid(format!(
            "onnx: input '{name}' has element type {elem:?}; wgrad feeds float tensors (and integer indices as floats)"
        ));
    }
    Ok(())
}

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

struct Importer<'a> {
    g: Graph,
    values: HashMap<String, Value>,
    inits: HashMap<String, &'a TensorProto>,
    /// The node writing each tensor.
    producers: HashMap<String, &'a NodeProto>,
    /// The nodes made of values known on the host (integers, `Constant`s).
    host_nodes: HashMap<String, NodeId>,
    opset: i64,
}

impl<'a> Importer<'a> {
    /// Whether input `i` of `n` is given (present and not the empty name).
    fn has(n: &NodeProto, i: usize) -> bool {
        n.input.get(i).is_some_and(|s| !s.is_empty())
    }

    /// The wgrad node of tensor `name`; an initializer becomes a trainable parameter.
    fn node_of(&mut self, name: &str) -> Result<NodeId> {
        self.variable_of(name, true)
    }

    fn variable_of(&mut self, name: &str, trainable: bool) -> Result<NodeId> {
        let (d, v) = match self.values.get(name) {
            Some(Value::Node(id)) => return Ok(*id),
            Some(Value::Ints(v)) => (vec![v.len()], v.iter().map(|&i| i as f32).collect()),
            Some(Value::Floats(d, v)) => (d.clone(), v.clone()),
            Some(Value::View(..)) => {
                return invalid(format!(
                    "'{name}' holds a batch-first tensor with its axes in another order ([seq, batch, ..] or [directions, batch, ..]); wgrad reads such a tensor only through Transpose, Squeeze, Unsqueeze, Reshape, Shape, unary ops and recurrences"
                ))
            }
            Some(Value::Dims(d)) => {
                return invalid(format!(
                    "'{name}' is a shape with the batch or sequence size in it ({d:?}), known only when running"
                ))
            }
            None => (Vec::new(), Vec::new()),
        };
        if !d.is_empty() || !v.is_empty() {
            // The host value stays known (a pattern may read it); its node is made once.
            if let Some(&id) = self.host_nodes.get(name) {
                return Ok(id);
            }
            let id = self.given(name, &d, &v, false)?;
            self.host_nodes.insert(name.into(), id);
            return Ok(id);
        }
        let Some(&t) = self.inits.get(name) else {
            return invalid(format!("'{name}' is not computed before it is used"));
        };
        let id = self.given(name, &dims(t)?, &floats(t)?, trainable)?;
        self.values.insert(name.into(), Value::Node(id));
        Ok(id)
    }

    /// A tensor of `values`: a constant when they are all equal and not trainable.
    fn given(&self, name: &str, d: &[usize], v: &[f32], trainable: bool) -> Result<NodeId> {
        if !trainable && !v.is_empty() && v.iter().all(|&x| x == v[0]) {
            return Ok(self.g.constant(v[0], d));
        }
        self.g.variable_from(name, d, v, trainable)
    }

    /// Input `i` of `n` as a node.
    fn input(&mut self, n: &NodeProto, i: usize) -> Result<NodeId> {
        match n.input.get(i) {
            Some(name) if !name.is_empty() => self.node_of(name),
            _ => invalid(format!("input {i} is missing")),
        }
    }

    /// Input `i` of `n` as integers known now (an initializer or a `Constant`).
    fn ints_input(&self, n: &NodeProto, i: usize) -> Result<Vec<i64>> {
        let name = n.input.get(i).map_or("", String::as_str);
        if let Some(Value::Ints(v)) = self.values.get(name) {
            return Ok(v.clone());
        }
        match self.inits.get(name) {
            Some(t) => ints(t),
            None => invalid(format!(
                "input {i} ('{name}') must be a constant integer tensor (computed shapes are not supported)"
            )),
        }
    }

    /// The axes of a reduce, squeeze or unsqueeze: the `axes` attribute (older opsets) or
    /// input 1 (newer ones).
    fn axes(&self, n: &NodeProto, input_from: i64) -> Result<Option<Vec<i64>>> {
        if self.opset >= input_from {
            return match Self::has(n, 1) {
                true => self.ints_input(n, 1).map(Some),
                false => Ok(None),
            };
        }
        Ok(attr_ints(n, "axes"))
    }

    fn set(&mut self, n: &NodeProto, id: NodeId) {
        self.set_value(n, Value::Node(id));
    }

    fn set_value(&mut self, n: &NodeProto, v: Value) {
        if let Some(out) = n.output.first() {
            self.values.insert(out.clone(), v);
        }
    }

    /// Imports one node.
    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !n.domain().is_empty() && n.domain() != "ai.onnx" {
            return invalid(format!("domain '{}' is not supported", n.domain()));
        }
        if let Some(extra) = n.output.iter().skip(1).find(|o| !o.is_empty()) {
            if !matches!(n.op_type(), "Dropout" | "LSTM" | "GRU" | "RNN") {
                return invalid(format!("a second output ('{extra}') is not supported"));
            }
        }
        let op = n.op_type();
        if op == "Constant" {
            return self.constant(n);
        }
        let id = match op {
            "Identity" | "Dropout" | "Cast" => return self.pass_through(n),
            "Neg" | "Exp" | "Log" | "Sqrt" | "Abs" | "Sign" | "Sigmoid" | "Tanh" | "Relu"
            | "Softplus" => return self.unary(n),
            "LSTM" | "GRU" | "RNN" => return self.recurrence(n),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => return self.reshape(n),
            "Transpose" => return self.transpose(n),
            "Shape" => return self.shape_of(n),
            "Concat" if self.all_host_shapes(n) => return self.concat_shapes(n),
            "Gather" if self.host_shape_input(n, 0).is_some() => return self.gather_shape(n),
            "Expand" => return self.expand(n),
            "GatherND" => self.gather_nd(n)?,
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Greater" | "GreaterOrEqual"
            | "Less" | "LessOrEqual" | "Equal" => self.binary(n)?,
            "MatMul" => {
                let (a, b) = (self.input(n, 0)?, self.input(n, 1)?);
                self.g.matmul(a, b)?
            }
            "Gemm" => self.gemm(n)?,
            "Conv" => self.conv(n)?,
            "MaxPool" | "AveragePool" => self.pool(n)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.input(n, 0)?;
                let kind = match op {
                    "GlobalAveragePool" => ReduceOp::Mean,
                    _ => ReduceOp::Max,
                };
                self.g.reduce(kind, x, &[2, 3], true)?
            }
            "BatchNormalization" => self.batch_norm(n)?,
            "Concat" => {
                let axis = attr_int(n, "axis", 0) as isize;
                let mut y = self.input(n, 0)?;
                for i in 1..n.input.len() {
                    let b = self.input(n, i)?;
                    y = self.g.concat(y, b, axis)?;
                }
                y
            }
            "Softmax" | "LogSoftmax" => self.softmax(n)?,
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" => self.reduce(n)?,
            "ArgMax" => self.argmax(n)?,
            "Slice" => self.slice(n)?,
            "Gather" => match self.gather_fixed(n)? {
                Some(v) => {
                    self.set_value(n, v);
                    return Ok(());
                }
                None => self.gather(n)?,
            },
            "Pad" => self.pad(n)?,
            other => return invalid(format!("op {other} is not supported by wgrad's importer")),
        };
        self.set(n, id);
        Ok(())
    }

    fn constant(&mut self, n: &NodeProto) -> Result<()> {
        let Some(t) = attr(n, "value").and_then(|a| a.t.as_ref()) else {
            return invalid("only a tensor `value` is supported");
        };
        let out = n.output.first().cloned().unwrap_or_default();
        let is_int = matches!(
            t.data_type.and_then(|e| DataType::try_from(e).ok()),
            Some(DataType::Int64 | DataType::Int32)
        );
        let value = match is_int {
            true => Value::Ints(ints(t)?),
            false => Value::Floats(dims(t)?, floats(t)?),
        };
        self.values.insert(out, value);
        Ok(())
    }

    /// Identity, Dropout (inference) and Cast: the input itself. wgrad keeps every value as
    /// a float, so a cast to an integer type holds the same (whole) numbers.
    fn pass_through(&mut self, n: &NodeProto) -> Result<()> {
        if n.op_type() == "Dropout" && attr_int(n, "training_mode", 0) != 0 {
            return invalid("training mode is not supported");
        }
        if n.op_type() == "Cast" {
            let to = DataType::try_from(attr_int(n, "to", 0) as i32).ok();
            if !matches!(
                to,
                Some(DataType::Float | DataType::Int64 | DataType::Int32 | DataType::Double)
            ) {
                return invalid(format!("a cast to {to:?} is not supported"));
            }
        }
        let name = n.input.first().cloned().unwrap_or_default();
        let out = n.output.first().cloned().unwrap_or_default();
        // A value known now (a shape, say) or a view stays one.
        let value = match self.values.get(&name) {
            Some(v @ (Value::Ints(_) | Value::Floats(..) | Value::Dims(_) | Value::View(..))) => {
                v.clone()
            }
            _ => Value::Node(self.input(n, 0)?),
        };
        self.values.insert(out, value);
        Ok(())
    }

    /// An elementwise unary op; it keeps a view's order.
    fn unary(&mut self, n: &NodeProto) -> Result<()> {
        let op = match n.op_type() {
            "Neg" => UnaryOp::Neg,
            "Exp" => UnaryOp::Exp,
            "Log" => UnaryOp::Log,
            "Sqrt" => UnaryOp::Sqrt,
            "Abs" => UnaryOp::Abs,
            "Sign" => UnaryOp::Sign,
            "Sigmoid" => UnaryOp::Sigmoid,
            "Tanh" => UnaryOp::Tanh,
            "Relu" => UnaryOp::Relu,
            _ => UnaryOp::Softplus,
        };
        let (x, perm) = self.view_input(n, 0)?;
        let y = self.g.unary(op, x)?;
        let v = self.normalize(y, perm)?;
        self.set_value(n, v);
        Ok(())
    }

    fn binary(&mut self, n: &NodeProto) -> Result<NodeId> {
        let op = match n.op_type() {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            "Greater" => BinaryOp::Gt,
            "GreaterOrEqual" => BinaryOp::Ge,
            "Less" => BinaryOp::Lt,
            "LessOrEqual" => BinaryOp::Le,
            _ => BinaryOp::Eq,
        };
        // Max and Min take any number of inputs.
        let mut y = self.input(n, 0)?;
        for i in 1..n.input.len().max(2) {
            let b = self.input(n, i)?;
            y = self.g.binary(op, y, b)?;
        }
        Ok(y)
    }

    /// `alpha · A' B' + beta · C`, a 1-D `C` added as a bias.
    fn gemm(&mut self, n: &NodeProto) -> Result<NodeId> {
        let (a, b) = (self.input(n, 0)?, self.input(n, 1)?);
        let ta = attr_int(n, "transA", 0) != 0;
        let tb = attr_int(n, "transB", 0) != 0;
        let (alpha, beta) = (attr_float(n, "alpha", 1.0), attr_float(n, "beta", 1.0));
        let mut y = self.g.matmul_t(a, b, ta, tb)?;
        if alpha != 1.0 {
            y = self.g.scale(y, alpha)?;
        }
        if !Self::has(n, 2) {
            return Ok(y);
        }
        let c = self.input(n, 2)?;
        let cols = self.g.shape(y).0.last().copied();
        if beta == 1.0 && self.g.shape(c).0.first() == cols.as_ref() && self.g.shape(c).rank() == 1
        {
            return self.g.bias_act(y, c, -1, None);
        }
        let c = match beta {
            1.0 => c,
            _ => self.g.scale(c, beta)?,
        };
        self.g.add(y, c)
    }

    /// Stride, padding and dilation of a Conv or pooling node over `x`'s 2-D image.
    fn window(&self, n: &NodeProto, kernel: (usize, usize)) -> Result<WindowOpts> {
        let pair = |key: &str| -> Result<(usize, usize)> {
            match attr_ints(n, key).as_deref() {
                None => Ok((1, 1)),
                Some(&[a, b]) if a > 0 && b > 0 => Ok((a as usize, b as usize)),
                Some(v) => invalid(format!("{key} {v:?}: two positive sizes expected (2-D)")),
            }
        };
        let padding = match attr_string(n, "auto_pad", "NOTSET").as_str() {
            "NOTSET" => match attr_ints(n, "pads").as_deref() {
                None => Padding::Valid,
                Some(&[t, l, b, r]) if t >= 0 && l >= 0 && b >= 0 && r >= 0 => Padding::Pads {
                    begin: (t as usize, l as usize),
                    end: (b as usize, r as usize),
                },
                Some(v) => return invalid(format!("pads {v:?}: four non-negative sizes expected")),
            },
            "VALID" => Padding::Valid,
            "SAME_UPPER" => Padding::SameUpper,
            "SAME_LOWER" => Padding::SameLower,
            other => return invalid(format!("auto_pad {other} is not an ONNX padding")),
        };
        if let Some(k) = attr_ints(n, "kernel_shape") {
            if k != [kernel.0 as i64, kernel.1 as i64] {
                return invalid(format!(
                    "kernel_shape {k:?} does not match the filters' {kernel:?}"
                ));
            }
        }
        Ok(WindowOpts {
            stride: pair("strides")?,
            padding,
            dilation: pair("dilations")?,
        })
    }

    fn conv(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "group", 1) != 1 {
            return invalid("grouped convolutions (group > 1) are not supported");
        }
        let (x, w) = (self.input(n, 0)?, self.input(n, 1)?);
        let sw = self.g.shape(w).resolve(1);
        if sw.len() != 4 {
            return invalid(format!("only 2-D convolutions: filters {sw:?}"));
        }
        let opts = self.window(n, (sw[2], sw[3]))?;
        let b = match Self::has(n, 2) {
            true => Some(self.input(n, 2)?),
            false => None,
        };
        self.g.conv2d(x, w, b, opts)
    }

    fn pool(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "ceil_mode", 0) != 0 {
            return invalid("ceil_mode 1 is not supported");
        }
        let kernel = match attr_ints(n, "kernel_shape").as_deref() {
            Some(&[a, b]) if a > 0 && b > 0 => (a as usize, b as usize),
            other => return invalid(format!("kernel_shape {other:?}: 2-D pooling expected")),
        };
        let x = self.input(n, 0)?;
        let opts = self.window(n, kernel)?;
        match n.op_type() {
            "MaxPool" => self.g.max_pool2d(x, kernel, opts),
            _ if attr_int(n, "count_include_pad", 0) != 0 => {
                self.g.avg_pool2d_counting_pads(x, kernel, opts)
            }
            _ => self.g.avg_pool2d(x, kernel, opts),
        }
    }

    /// Inference batch normalisation: `(x - mean) / sqrt(var + eps) · scale + bias`, along
    /// axis 1; the scale and bias are trainable, the mean and variance are state.
    fn batch_norm(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "training_mode", 0) != 0 {
            return invalid("training mode is not supported");
        }
        let x = self.input(n, 0)?;
        let rank = self.g.shape(x).rank();
        let eps = attr_float(n, "epsilon", 1e-5);
        let mut per_channel = |i: usize, trainable: bool| -> Result<NodeId> {
            let name = n.input.get(i).cloned().unwrap_or_default();
            let v = self.variable_of(&name, trainable)?;
            // [C] → [C, 1, …] so that it lines up with axis 1.
            let c = self.g.shape(v).resolve(1);
            let mut d = c.clone();
            d.resize(rank.saturating_sub(1), 1);
            self.g.reshape(v, Shape::fixed(&d))
        };
        let (scale, bias) = (per_channel(1, true)?, per_channel(2, true)?);
        let (mean, var) = (per_channel(3, false)?, per_channel(4, false)?);
        let g = &self.g;
        let std = g.sqrt(g.add(var, g.scalar(eps))?)?;
        let norm = g.div(g.sub(x, mean)?, std)?;
        g.add(g.mul(norm, scale)?, bias)
    }

    fn softmax(&mut self, n: &NodeProto) -> Result<NodeId> {
        let x = self.input(n, 0)?;
        let rank = self.g.shape(x).rank() as i64;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = attr_int(n, "axis", default).rem_euclid(rank.max(1));
        if self.opset < 13 && axis != rank - 1 {
            return invalid(format!(
                "before opset 13, softmax flattens axes {axis}.. into one; only the last axis is supported"
            ));
        }
        match n.op_type() {
            "Softmax" => self.g.softmax(x, axis as isize),
            _ => self.g.log_softmax(x, axis as isize),
        }
    }

    fn reduce(&mut self, n: &NodeProto) -> Result<NodeId> {
        let op = match n.op_type() {
            "ReduceSum" => ReduceOp::Sum,
            "ReduceMean" => ReduceOp::Mean,
            "ReduceMax" => ReduceOp::Max,
            _ => ReduceOp::Min,
        };
        let from = if op == ReduceOp::Sum { 13 } else { 18 };
        let x = self.input(n, 0)?;
        let axes = self.axes(n, from)?.unwrap_or_default();
        if axes.is_empty() && attr_int(n, "noop_with_empty_axes", 0) != 0 {
            return Ok(x);
        }
        let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let keep = attr_int(n, "keepdims", 1) != 0;
        self.g.reduce(op, x, &axes, keep)
    }

    fn argmax(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "select_last_index", 0) != 0 {
            return invalid("select_last_index 1 is not supported");
        }
        let x = self.input(n, 0)?;
        let axis = attr_int(n, "axis", 0) as isize;
        match attr_int(n, "keepdims", 1) != 0 {
            true => {
                let a = self.g.shape(x).axis("argmax", axis)?;
                self.g.reduce_axis(ReduceOp::Argmax, x, a)
            }
            false => self.g.argmax(x, axis),
        }
    }

    fn slice(&mut self, n: &NodeProto) -> Result<NodeId> {
        let x = self.input(n, 0)?;
        let s = self.g.shape(x);
        let (starts, ends) = (self.ints_input(n, 1)?, self.ints_input(n, 2)?);
        let rank = s.rank() as i64;
        let axes = match Self::has(n, 3) {
            true => self.ints_input(n, 3)?,
            false => (0..starts.len() as i64).collect(),
        };
        if Self::has(n, 4) && self.ints_input(n, 4)?.iter().any(|&st| st != 1) {
            return invalid("only steps of 1 are supported");
        }
        if starts.len() != ends.len() || axes.len() != starts.len() {
            return invalid("starts, ends and axes differ in length");
        }
        let mut y = x;
        for ((&b, &e), &a) in starts.iter().zip(&ends).zip(&axes) {
            let a = a.rem_euclid(rank.max(1)) as usize;
            let len = match s.0[a] {
                Dim::Fixed(l) => l as i64,
                _ => return invalid(format!("cannot slice axis {a} of {s}, the batch axis")),
            };
            let clamp = |v: i64| if v < 0 { (v + len).max(0) } else { v.min(len) };
            let (b, e) = (clamp(b), clamp(e));
            if (b, e) != (0, len) {
                y = self.g.slice(y, a as isize, b as usize, e as usize)?;
            }
        }
        Ok(y)
    }

    /// Gather on axis 0 of a 2-D table: an embedding lookup; on axis 1 of a sequence, its
    /// first step.
    fn gather(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "axis", 0) == 1 {
            return self.gather_first_step(n);
        }
        if attr_int(n, "axis", 0) != 0 {
            return invalid(
                "only axis 0 (rows of a table) or axis 1 (a sequence's first step) is supported",
            );
        }
        let (table, idx) = (self.input(n, 0)?, self.input(n, 1)?);
        self.g.embedding(idx, table)
    }

    /// Zero padding (mode `constant`, value 0) of the axes after the batch axis.
    fn pad(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_string(n, "mode", "constant") != "constant" || Self::has(n, 2) || Self::has(n, 3) {
            return invalid("only zero padding of every axis (mode constant, no value or axes input) is supported");
        }
        let x = self.input(n, 0)?;
        let pads = self.ints_input(n, 1)?;
        let mut dims = self.g.shape(x).0;
        let rank = dims.len();
        if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
            return invalid(format!(
                "pads {pads:?}: {} non-negative sizes expected",
                2 * rank
            ));
        }
        let mut y = x;
        for axis in 0..rank {
            let (b, e) = (pads[axis] as usize, pads[rank + axis] as usize);
            if b + e == 0 {
                continue;
            }
            let Dim::Fixed(len) = dims[axis] else {
                return invalid("cannot pad the batch axis");
            };
            dims[axis] = Dim::Fixed(len + b + e);
            y = self.g.pad_to(y, axis, b, Shape(dims.clone()));
        }
        Ok(y)
    }
}
