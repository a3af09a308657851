//! Export of a graph's inference part to ONNX (opset 17): a walk back from the chosen
//! outputs that writes one or a few ONNX nodes per wgrad node. Patterns that wgrad builds
//! from several nodes come out as one ONNX op: a convolution (im2col, a product and
//! reshapes, with its bias) as `Conv`. Training-only nodes resolve to their evaluation
//! values: `Mode` to its `eval` operand, dropout to its input.

use std::collections::{HashMap, HashSet};

mod sequences;

use super::generated::tensor_proto::DataType;
use super::generated::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};
use super::generated::{ValueInfoProto, Version};

use super::proto::{float_tensor, int_tensor, node, value_info, Attr};
use crate::graph::{BinaryOp, Graph, Node, NodeId, Op, ReduceOp, UnaryOp, Window};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// The opset written.
pub(crate) const OPSET: i64 = 17;

/// Where exported parameters get their values.
pub(crate) type Weights<'a> = &'a dyn Fn(NodeId) -> Result<Vec<f32>>;

/// Builds the ONNX model of `outputs` (name, node) of `graph`, the parameters' values from
/// `weights`.
pub(crate) fn model(
    graph: &Graph,
    weights: Weights<'_>,
    outputs: &[(&str, NodeId)],
) -> Result<ModelProto> {
    if outputs.is_empty() {
        return Err(Error::Invalid("onnx export: no outputs named".into()));
    }
    let nodes = graph.nodes().clone();
    let mut used: HashSet<String> = nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Input { name } | Op::Param { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut ex = Exporter {
        nodes: &nodes,
        weights,
        names: HashMap::new(),
        out: Vec::new(),
        inits: Vec::new(),
        inputs: Vec::new(),
        used: used.clone(),
        fresh: 0,
        scan_outputs: HashMap::new(),
    };
    let mut graph_outputs = Vec::new();
    for &(name, id) in outputs {
        if !id.of_graph(graph.tag()) || id.0 >= nodes.len() {
            return Err(Error::Invalid(format!(
                "onnx export: output '{name}' is not a node of this graph"
            )));
        }
        if !used.insert(name.to_string()) {
            return Err(Error::Invalid(format!(
                "onnx export: output name '{name}' is already an input, parameter or output name"
            )));
        }
        let inner = ex.value(id)?;
        ex.used.insert(name.to_string());
        let n = node("Identity", name.into(), &[&inner], &[name], vec![]);
        ex.out.push(n);
        graph_outputs.push(value_info(name, &nodes[id.0].shape)?);
    }
    let g = GraphProto {
        name: Some("wgrad".into()),
        node: ex.out,
        initializer: ex.inits,
        input: ex.inputs,
        output: graph_outputs,
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: Some(Version::IrVersion2021730 as i64),
        producer_name: Some("wgrad".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        graph: Some(g),
        ..ModelProto::default()
    })
}

/// The walk's state: names given to wgrad nodes, and what has been written.
struct Exporter<'a> {
    nodes: &'a [Node],
    weights: Weights<'a>,
    /// The ONNX tensor holding each exported wgrad node.
    names: HashMap<usize, String>,
    out: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    used: HashSet<String>,
    fresh: usize,
    /// The hidden states of each exported recurrence.
    scan_outputs: HashMap<usize, String>,
}

/// A convolution as wgrad builds it: `reshape(matmul_t(reshape(w), im2col(x), tb))`.
struct ConvParts {
    x: NodeId,
    w: NodeId,
    win: Window,
}

impl Exporter<'_> {
    /// The name of the ONNX tensor holding node `id`, writing it first if needed.
    fn value(&mut self, id: NodeId) -> Result<String> {
        if let Some(n) = self.names.get(&id.0) {
            return Ok(n.clone());
        }
        let name = self.emit(id)?;
        self.names.insert(id.0, name.clone());
        Ok(name)
    }

    /// A name no input, parameter or earlier tensor has.
    fn fresh(&mut self, hint: &str) -> String {
        loop {
            self.fresh += 1;
            let name = format!("{hint}_{}", self.fresh);
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }

    /// Writes `op_type(inputs)` and returns its one output's name.
    fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(op_type);
        let n = node(op_type, out.clone(), inputs, &[&out], attrs);
        self.out.push(n);
        out
    }

    /// An int64 initializer.
    fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.inits.push(int_tensor(&name, values));
        name
    }

    /// A `Constant` node of `dims`, every element `value` (initializers are kept for
    /// parameters, which an importer makes trainable).
    fn constant(&mut self, value: f32, dims: &[usize]) -> String {
        let n: usize = dims.iter().product();
        let t = float_tensor("", dims, &vec![value; n]);
        self.op("Constant", &[], vec![("value", Attr::Tensor(Box::new(t)))])
    }

    fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.0].shape
    }

    fn emit(&mut self, id: NodeId) -> Result<String> {
        let node = &self.nodes[id.0];
        let shape = node.shape.clone();
        Ok(match node.op.clone() {
            Op::Input { name } => {
                self.inputs.push(value_info(&name, &shape)?);
                name
            }
            Op::Param { name, .. } => {
                let values = (self.weights)(id)?;
                let dims = shape.resolve(1);
                self.inits.push(float_tensor(&name, &dims, &values));
                name
            }
            Op::Const { value } => self.constant(value, &shape.resolve(1)),
            Op::Unary { op, x } => {
                let x = self.value(x)?;
                self.unary(op, &x)?
            }
            Op::Binary { op, a, b } => self.binary(id, op, a, b)?,
            Op::Matmul { a, b, ta, tb } => {
                let a = self.transposed(a, ta)?;
                let b = self.transposed(b, tb)?;
                self.op("MatMul", &[&a, &b], vec![])
            }
            Op::Reduce { op, x, axis } => self.reduce(op, x, axis)?,
            Op::Expand { x, mean_axis: None } => {
                let x = self.value(x)?;
                let dims: Vec<i64> = shape.0.iter().map(|d| onnx_dim(*d, 1)).collect();
                let s = self.ints(&dims);
                self.op("Expand", &[&x, &s], vec![])
            }
            Op::Reshape { x } => match self.conv_parts(id) {
                Some(c) => self.conv(&c, None)?,
                None => {
                    let x = self.value(x)?;
                    let dims: Vec<i64> = shape.0.iter().map(|d| onnx_dim(*d, -1)).collect();
                    let s = self.ints(&dims);
                    self.op("Reshape", &[&x, &s], vec![])
                }
            },
            Op::Softmax { x, axis, log } => {
                let x = self.value(x)?;
                let kind = if log { "LogSoftmax" } else { "Softmax" };
                self.op(kind, &[&x], vec![("axis", Attr::Int(axis as i64))])
            }
            Op::Pool { x, win, max } => self.pool(x, win, max)?,
            Op::Concat { a, b, axis } => {
                let (a, b) = (self.value(a)?, self.value(b)?);
                self.op("Concat", &[&a, &b], vec![("axis", Attr::Int(axis as i64))])
            }
            Op::Slice { x, axis: 2, begin }
                if matches!(self.nodes[x.0].op, Op::LstmScan { .. }) =>
            {
                let len = shape.0[2].resolve(1);
                self.lstm_half(x, begin, len)?
            }
            Op::Slice { x, axis, begin } => {
                let len = shape.0[axis].resolve(1) as i64;
                let x = self.value(x)?;
                let starts = self.ints(&[begin as i64]);
                let ends = self.ints(&[begin as i64 + len]);
                let axes = self.ints(&[axis as i64]);
                self.op("Slice", &[&x, &starts, &ends, &axes], vec![])
            }
            Op::Pad { x, axis, begin } => {
                let rank = shape.rank();
                let added = shape.0[axis].resolve(1) - self.shape(x).0[axis].resolve(1);
                let mut pads = vec![0i64; 2 * rank];
                pads[axis] = begin as i64;
                pads[rank + axis] = (added - begin) as i64;
                let x = self.value(x)?;
                let pads = self.ints(&pads);
                self.op("Pad", &[&x, &pads], vec![])
            }
            Op::Permute { x, perm } => {
                let x = self.value(x)?;
                let perm = perm.iter().map(|&a| a as i64).collect();
                self.op("Transpose", &[&x], vec![("perm", Attr::Ints(perm))])
            }
            Op::GatherRows { table, indices } => {
                let table = self.value(table)?;
                let indices = self.value(indices)?;
                let to = Attr::Int(DataType::Int64 as i64);
                let idx = self.op("Cast", &[&indices], vec![("to", to)]);
                self.op("Gather", &[&table, &idx], vec![("axis", Attr::Int(0))])
            }
            Op::OneHot { x } => {
                let classes = shape.0.last().map_or(1, |d| d.resolve(1)) as i64;
                let x = self.value(x)?;
                let depth = self.ints(&[classes]);
                let t = float_tensor("", &[2], &[0.0, 1.0]);
                let values = self.op("Constant", &[], vec![("value", Attr::Tensor(Box::new(t)))]);
                self.op(
                    "OneHot",
                    &[&x, &depth, &values],
                    vec![("axis", Attr::Int(-1))],
                )
            }
            Op::Dropout { x, .. } => self.value(x)?,
            Op::Mode { eval, .. } => self.value(eval)?,
            Op::BiasAct { x, b, axis, act } => self.bias_act(x, b, axis, act)?,
            Op::LstmScan { .. } => {
                let width = shape.0[2].resolve(1);
                self.lstm_half(id, 0, width)?
            }
            Op::GruScan { .. } | Op::RnnScan { .. } => self.scan_hidden(id)?,
            Op::SeqPick { x, lengths, last } => self.seq_pick(x, lengths, last)?,
            other => return Err(unsupported(id, &other)),
        })
    }

    fn unary(&mut self, op: UnaryOp, x: &str) -> Result<String> {
        let kind = match op {
            UnaryOp::Neg => "Neg",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Abs => "Abs",
            UnaryOp::Sign => "Sign",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Relu => "Relu",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Scale(s) => {
                let s = self.constant(s, &[]);
                return Ok(self.op("Mul", &[x, &s], vec![]));
            }
        };
        Ok(self.op(kind, &[x], vec![]))
    }

    fn binary(&mut self, id: NodeId, op: BinaryOp, a: NodeId, b: NodeId) -> Result<String> {
        let (kind, compare) = match op {
            BinaryOp::Add => ("Add", false),
            BinaryOp::Sub => ("Sub", false),
            BinaryOp::Mul => ("Mul", false),
            BinaryOp::Div => ("Div", false),
            BinaryOp::Max => ("Max", false),
            BinaryOp::Min => ("Min", false),
            BinaryOp::Gt => ("Greater", true),
            BinaryOp::Ge => ("GreaterOrEqual", true),
            BinaryOp::Lt => ("Less", true),
            BinaryOp::Le => ("LessOrEqual", true),
            BinaryOp::Eq => ("Equal", true),
            BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad => {
                return Err(unsupported(id, &self.nodes[id.0].op))
            }
        };
        let (a, b) = (self.value(a)?, self.value(b)?);
        let y = self.op(kind, &[&a, &b], vec![]);
        if !compare {
            return Ok(y);
        }
        let to = Attr::Int(DataType::Float as i64);
        Ok(self.op("Cast", &[&y], vec![("to", to)]))
    }

    /// `x`, with its last two axes swapped when `t`.
    fn transposed(&mut self, x: NodeId, t: bool) -> Result<String> {
        let rank = self.shape(x).rank();
        let name = self.value(x)?;
        if !t {
            return Ok(name);
        }
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        perm.swap(rank - 1, rank - 2);
        Ok(self.op("Transpose", &[&name], vec![("perm", Attr::Ints(perm))]))
    }

    fn reduce(&mut self, op: ReduceOp, x: NodeId, axis: usize) -> Result<String> {
        let x = self.value(x)?;
        let axis = axis as i64;
        let keep = ("keepdims", Attr::Int(1));
        Ok(match op {
            ReduceOp::Sum => {
                let axes = self.ints(&[axis]);
                self.op("ReduceSum", &[&x, &axes], vec![keep])
            }
            ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min => {
                let kind = match op {
                    ReduceOp::Mean => "ReduceMean",
                    ReduceOp::Max => "ReduceMax",
                    _ => "ReduceMin",
                };
                self.op(kind, &[&x], vec![("axes", Attr::Ints(vec![axis])), keep])
            }
            ReduceOp::Argmax => {
                let i = self.op("ArgMax", &[&x], vec![("axis", Attr::Int(axis)), keep]);
                let to = Attr::Int(DataType::Float as i64);
                self.op("Cast", &[&i], vec![("to", to)])
            }
        })
    }

    /// The pieces of a convolution ending at reshape node `id`, if it is one.
    fn conv_parts(&self, id: NodeId) -> Option<ConvParts> {
        let Op::Reshape { x: m } = self.nodes[id.0].op else {
            return None;
        };
        let Op::Matmul {
            a: wm,
            b: cols,
            ta: false,
            tb: true,
        } = self.nodes[m.0].op
        else {
            return None;
        };
        let (Op::Reshape { x: w }, Op::Im2Col { x, win }) =
            (&self.nodes[wm.0].op, &self.nodes[cols.0].op)
        else {
            return None;
        };
        (self.shape(*w).rank() == 4 && self.shape(id).rank() == 4).then_some(ConvParts {
            x: *x,
            w: *w,
            win: *win,
        })
    }

    fn conv(&mut self, c: &ConvParts, bias: Option<NodeId>) -> Result<String> {
        let x = self.value(c.x)?;
        let w = self.value(c.w)?;
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            inputs.push(self.value(b)?);
        }
        let win = c.win;
        let mut attrs = window_attrs(&win);
        attrs.push(("dilations", Attr::Ints(vec![win.dh as i64, win.dw as i64])));
        attrs.push(("group", Attr::Int(1)));
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.op("Conv", &refs, attrs))
    }

    fn pool(&mut self, x: NodeId, win: Window, max: bool) -> Result<String> {
        let x = self.value(x)?;
        let mut attrs = window_attrs(&win);
        if max {
            attrs.push(("dilations", Attr::Ints(vec![win.dh as i64, win.dw as i64])));
            return Ok(self.op("MaxPool", &[&x], attrs));
        }
        if (win.dh, win.dw) != (1, 1) {
            return Err(Error::Invalid(format!(
                "onnx export: average pooling with dilation ({}, {}) has no opset {OPSET} equivalent",
                win.dh, win.dw
            )));
        }
        attrs.push(("count_include_pad", Attr::Int(0)));
        Ok(self.op("AveragePool", &[&x], attrs))
    }

    fn bias_act(
        &mut self,
        x: NodeId,
        b: NodeId,
        axis: usize,
        act: Option<UnaryOp>,
    ) -> Result<String> {
        let y = match self.conv_parts(x) {
            Some(c) if axis == 1 => self.conv(&c, Some(b))?,
            _ => {
                let rank = self.shape(x).rank();
                let xv = self.value(x)?;
                let mut bv = self.value(b)?;
                if axis + 1 != rank {
                    // [C] → [C, 1, …, 1], so that it broadcasts along `axis`.
                    let c = self.shape(b).resolve(1)[0] as i64;
                    let mut dims = vec![c];
                    dims.resize(rank - axis, 1);
                    let s = self.ints(&dims);
                    bv = self.op("Reshape", &[&bv, &s], vec![]);
                }
                self.op("Add", &[&xv, &bv], vec![])
            }
        };
        match act {
            None => Ok(y),
            Some(a) => self.unary(a, &y),
        }
    }
}

/// `kernel_shape`, `strides` and `pads` of a window; the end pads are what the output size
/// needs (wgrad keeps only the leading pads).
fn window_attrs(win: &Window) -> Vec<(&'static str, Attr)> {
    let end = |o: usize, s: usize, k: usize, d: usize, i: usize, p: usize| {
        ((o - 1) * s + (k - 1) * d + 1).saturating_sub(i + p) as i64
    };
    let eh = end(win.oh, win.sh, win.kh, win.dh, win.h, win.ph);
    let ew = end(win.ow, win.sw, win.kw, win.dw, win.w, win.pw);
    vec![
        (
            "kernel_shape",
            Attr::Ints(vec![win.kh as i64, win.kw as i64]),
        ),
        ("strides", Attr::Ints(vec![win.sh as i64, win.sw as i64])),
        (
            "pads",
            Attr::Ints(vec![win.ph as i64, win.pw as i64, eh, ew]),
        ),
    ]
}

/// An axis size for a Reshape/Expand shape: the batch axis as `batch_as`.
fn onnx_dim(d: Dim, batch_as: i64) -> i64 {
    match d {
        Dim::Fixed(n) => n as i64,
        _ => batch_as,
    }
}

fn unsupported(id: NodeId, op: &Op) -> Error {
    let debug = format!("{op:?}");
    let name = debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("op");
    let why = match op {
        Op::CrossEntropy { .. } | Op::ClassError { .. } => {
            "is a loss or metric: export the model's scores instead"
        }
        Op::SeqReduce { .. }
        | Op::SeqBroadcast { .. }
        | Op::SeqShift { .. }
        | Op::SeqMask { .. }
        | Op::SeqWhere { .. }
        | Op::SeqGather { .. }
        | Op::Attention { .. } => "is a sequence op, which the exporter does not write yet",
        Op::Im2Col { .. } => "has no ONNX equivalent (only a whole convolution does)",
        Op::Scan(_) | Op::StepValue | Op::ScanFinal { .. } => {
            "is a general recurrence, which the exporter does not write yet (ONNX Scan)"
        }
        _ => "has no ONNX equivalent (it is a gradient or training op)",
    };
    Error::Invalid(format!("onnx export: node {} ({name}) {why}", id.0))
}
