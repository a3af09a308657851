//! Import of an ONNX model into a [`Graph`]: one or a few wgrad nodes per ONNX node, in the
//! file's (topological) order. Float initializers become parameters that start from the
//! file's values, made when first used: trainable, except those that only hold running
//! statistics (BatchNormalization's mean and variance), which become state. Integer tensors
//! (shapes, axes, slice bounds) stay on the host as the arguments they are.

use std::collections::HashMap;

use super::generated::tensor_proto::DataType;
use super::generated::{type_proto, GraphProto, ModelProto, NodeProto, TensorProto};
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
    /// Integers known when importing (a shape, axes).
    Ints(Vec<i64>),
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
        opset,
    };
    let inputs = im.inputs(graph)?;
    for n in &graph.node {
        im.node(n).map_err(|e| at_node(n, e))?;
    }
    let mut outputs = Vec::new();
    for o in &graph.output {
        let id = im.node_of(o.name()).map_err(|e| match e {
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

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

struct Importer<'a> {
    g: Graph,
    values: HashMap<String, Value>,
    inits: HashMap<String, &'a TensorProto>,
    opset: i64,
}

impl<'a> Importer<'a> {
    /// The graph's inputs that are not initializers, each with its first axis as the batch.
    fn inputs(&mut self, graph: &GraphProto) -> Result<Vec<(String, NodeId)>> {
        let mut out = Vec::new();
        for vi in &graph.input {
            let name = vi.name();
            if self.inits.contains_key(name) {
                continue;
            }
            let tensor = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => t,
                _ => return invalid(format!("onnx: input '{name}' is not a tensor")),
            };
            let elem = tensor.elem_type.and_then(|e| DataType::try_from(e).ok());
            if !matches!(
                elem,
                Some(DataType::Float | DataType::Int64 | DataType::Int32)
            ) {
                return invalid(format!(
                    "onnx: input '{name}' has element type {elem:?}; wgrad feeds float tensors (and integer indices as floats)"
                ));
            }
            let shape = tensor.shape.as_ref().map(|s| &s.dim[..]).unwrap_or(&[]);
            if shape.is_empty() {
                return invalid(format!(
                    "onnx: input '{name}' has no shape; wgrad needs [batch, ..]"
                ));
            }
            let mut sample = Vec::new();
            for d in &shape[1..] {
                use super::generated::tensor_shape_proto::dimension::Value as D;
                match d.value {
                    Some(D::DimValue(v)) if v > 0 => sample.push(v as usize),
                    _ => {
                        return invalid(format!(
                            "onnx: input '{name}': only its first axis (the batch) may be symbolic"
                        ))
                    }
                }
            }
            let id = self.g.input(name, &sample)?;
            self.values.insert(name.to_string(), Value::Node(id));
            out.push((name.to_string(), id));
        }
        Ok(out)
    }

    /// Whether input `i` of `n` is given (present and not the empty name).
    fn has(n: &NodeProto, i: usize) -> bool {
        n.input.get(i).is_some_and(|s| !s.is_empty())
    }

    /// The wgrad node of tensor `name`; an initializer becomes a trainable parameter.
    fn node_of(&mut self, name: &str) -> Result<NodeId> {
        self.variable_of(name, true)
    }

    fn variable_of(&mut self, name: &str, trainable: bool) -> Result<NodeId> {
        match self.values.get(name) {
            Some(Value::Node(id)) => return Ok(*id),
            Some(Value::Ints(v)) => {
                let v: Vec<f32> = v.iter().map(|&i| i as f32).collect();
                let id = self.given(name, &[v.len()], &v, false)?;
                self.values.insert(name.into(), Value::Node(id));
                return Ok(id);
            }
            None => {}
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
        if let Some(out) = n.output.first() {
            self.values.insert(out.clone(), Value::Node(id));
        }
    }

    /// Imports one node.
    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !n.domain().is_empty() && n.domain() != "ai.onnx" {
            return invalid(format!("domain '{}' is not supported", n.domain()));
        }
        if let Some(extra) = n.output.iter().skip(1).find(|o| !o.is_empty()) {
            if n.op_type() != "Dropout" {
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
            | "Softplus" => self.unary(n)?,
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
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => self.reshape(n)?,
            "Transpose" => {
                let x = self.input(n, 0)?;
                let rank = self.g.shape(x).rank();
                let perm = match attr_ints(n, "perm") {
                    Some(p) => p.iter().map(|&a| a as usize).collect(),
                    None => (0..rank).rev().collect::<Vec<_>>(),
                };
                self.g.permute(x, &perm)?
            }
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
            "Gather" => self.gather(n)?,
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
            false => Value::Node(self.given(&out, &dims(t)?, &floats(t)?, false)?),
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
        // A constant integer tensor (a shape, say) stays one.
        let value = match self.values.get(&name) {
            Some(Value::Ints(v)) => Value::Ints(v.clone()),
            _ => Value::Node(self.input(n, 0)?),
        };
        self.values.insert(out, value);
        Ok(())
    }

    fn unary(&mut self, n: &NodeProto) -> Result<NodeId> {
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
        let x = self.input(n, 0)?;
        self.g.unary(op, x)
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

    /// Flatten, Reshape, Squeeze and Unsqueeze: a reshape that keeps the batch axis first.
    fn reshape(&mut self, n: &NodeProto) -> Result<NodeId> {
        let x = self.input(n, 0)?;
        let s = self.g.shape(x);
        if s.0.first() != Some(&Dim::Batch) {
            return invalid(format!("input {s} does not start with the batch axis"));
        }
        let sample: Vec<usize> = s.resolve(1)[1..].to_vec();
        let out: Vec<usize> = match n.op_type() {
            "Flatten" => {
                if attr_int(n, "axis", 1) != 1 {
                    return invalid("only axis 1 (keep the batch axis) is supported");
                }
                vec![sample.iter().product()]
            }
            "Reshape" => {
                let want = self.ints_input(n, 1)?;
                reshape_dims(&sample, &want, attr_int(n, "allowzero", 0) != 0)?
            }
            "Unsqueeze" => {
                let axes = self
                    .axes(n, 13)?
                    .ok_or_else(|| Error::Invalid("no axes".into()))?;
                let rank = (s.rank() + axes.len()) as i64;
                let mut axes: Vec<i64> = axes.iter().map(|&a| a.rem_euclid(rank)).collect();
                axes.sort_unstable();
                let mut d = sample.clone();
                for a in axes {
                    if a == 0 || a as usize > d.len() + 1 {
                        return invalid(format!("axis {a} would move the batch axis"));
                    }
                    d.insert(a as usize - 1, 1);
                }
                d
            }
            _ => {
                let rank = s.rank() as i64;
                let axes: Vec<i64> = match self.axes(n, 13)? {
                    Some(a) => a.iter().map(|&a| a.rem_euclid(rank)).collect(),
                    None => (1..rank).filter(|&a| sample[a as usize - 1] == 1).collect(),
                };
                if axes.iter().any(|&a| a == 0 || sample[a as usize - 1] != 1) {
                    return invalid(format!("axes {axes:?} of {s} are not all 1-sized"));
                }
                (1..rank)
                    .filter(|a| !axes.contains(a))
                    .map(|a| sample[a as usize - 1])
                    .collect()
            }
        };
        self.g.reshape(x, Shape::batched(&out))
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

    /// Gather on axis 0 of a 2-D table: an embedding lookup.
    fn gather(&mut self, n: &NodeProto) -> Result<NodeId> {
        if attr_int(n, "axis", 0) != 0 {
            return invalid("only axis 0 (rows of a table) is supported");
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

/// ONNX Reshape's target sizes (after the batch axis) from `want` (batch first: `0`
/// copies, `-1` is inferred), for a sample of `sample` sizes.
fn reshape_dims(sample: &[usize], want: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let Some((&first, rest)) = want.split_first() else {
        return invalid("an empty shape would drop the batch axis");
    };
    if first != -1 && (first != 0 || allow_zero) {
        return invalid(format!(
            "shape {want:?} must keep the batch axis first (as 0 or -1)"
        ));
    }
    let total: usize = sample.iter().product();
    let mut out = Vec::new();
    let mut infer = None;
    for (i, &d) in rest.iter().enumerate() {
        match d {
            -1 if infer.is_none() && first != -1 => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => match sample.get(i) {
                Some(&s) => out.push(s),
                None => return invalid(format!("shape {want:?}: 0 past the input's axes")),
            },
            d if d > 0 => out.push(d as usize),
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
        return invalid(format!("shape {want:?} does not hold {sample:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::reshape_dims;

    #[test]
    fn reshape_dims_infers_copies_and_checks() {
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[-1, 24], false).unwrap(),
            vec![24]
        );
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[0, 0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[0, 6, 4], false).unwrap(),
            vec![6, 4]
        );
        assert!(reshape_dims(&[2, 3, 4], &[-1, -1], false).is_err());
        // a shape that would move elements between samples
        assert!(reshape_dims(&[2, 3, 4], &[-1, 12], false).is_err());
        assert!(reshape_dims(&[2, 3, 4], &[5, 24], false).is_err());
        assert!(reshape_dims(&[2, 3, 4], &[0, 7], false).is_err());
        assert!(reshape_dims(&[2, 3, 4], &[], false).is_err());
    }
}
