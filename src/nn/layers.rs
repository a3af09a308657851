//! The layers themselves.

use super::Layer;
use crate::graph::{Graph, Init, NodeId, UnaryOp};
use crate::ops::{Padding, WindowOpts};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// An activation applied after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// None (identity).
    #[default]
    Identity,
    /// max(x, 0).
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, g: &Graph, x: NodeId) -> Result<NodeId> {
        match self {
            Activation::Identity => Ok(x),
            Activation::Relu => g.relu(x),
            Activation::Sigmoid => g.sigmoid(x),
            Activation::Tanh => g.tanh(x),
            Activation::Softmax => g.softmax(x, -1),
        }
    }

    /// Adds the bias `b` along `axis` and applies the activation, fused into one kernel
    /// where the activation allows it.
    pub fn apply_with_bias(self, g: &Graph, x: NodeId, b: NodeId, axis: isize) -> Result<NodeId> {
        let fused = match self {
            Activation::Identity => None,
            Activation::Relu => Some(UnaryOp::Relu),
            Activation::Sigmoid => Some(UnaryOp::Sigmoid),
            Activation::Tanh => Some(UnaryOp::Tanh),
            Activation::Softmax => return self.apply(g, g.bias_act(x, b, axis, None)?),
        };
        g.bias_act(x, b, axis, fused)
    }
}

impl Layer for Activation {
    fn kind(&self) -> &'static str {
        "act"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        self.apply(g, x)
    }
}

/// Flattens every axis after the batch axis (after the sequence axis for sequences, so
/// that layers apply per step): `[batch, …] → [batch, n]`, `[batch, seq, …] → [batch, seq, n]`.
fn flatten(g: &Graph, x: NodeId) -> Result<NodeId> {
    let s = g.shape(x);
    let keep = if s.has_seq() { 2 } else { 1 };
    if s.rank() <= keep + 1 {
        return Ok(x);
    }
    let n: usize = s.0[keep..].iter().map(|d| d.resolve(1)).product();
    let mut dims = s.0[..keep].to_vec();
    dims.push(Dim::Fixed(n));
    g.reshape(x, Shape(dims))
}

/// Fully connected layer `act(x·W + b)`, W `[in, units]` (glorot-uniform), b `[units]`
/// (zeros). Inputs with more than two axes are flattened first, as CNTK's Dense does.
#[derive(Clone, Copy, Debug)]
pub struct Dense {
    /// Output features.
    pub units: usize,
    /// Activation.
    pub activation: Activation,
    /// Weight initialiser.
    pub init: Init,
    /// Whether to add a bias.
    pub bias: bool,
}

impl Dense {
    /// A dense layer with `units` outputs and no activation.
    pub fn new(units: usize) -> Dense {
        Dense {
            units,
            activation: Activation::Identity,
            init: Init::GlorotUniform,
            bias: true,
        }
    }
    /// Sets the activation.
    pub fn activation(mut self, a: Activation) -> Dense {
        self.activation = a;
        self
    }
    /// ReLU activation.
    pub fn relu(self) -> Dense {
        self.activation(Activation::Relu)
    }
    /// Sets the weight initialiser.
    pub fn init(mut self, init: Init) -> Dense {
        self.init = init;
        self
    }
}

impl Layer for Dense {
    fn kind(&self) -> &'static str {
        "dense"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let x = flatten(g, x)?;
        let s = g.shape(x);
        let Some(&Dim::Fixed(inputs)) = s.0.last() else {
            return Err(Error::Shape {
                op: "dense",
                msg: format!("{name}: input {s} needs a fixed feature axis"),
            });
        };
        let w = g.parameter(&format!("{name}.weight"), &[inputs, self.units], self.init)?;
        let y = g.matmul(x, w)?;
        if self.bias {
            let b = g.parameter(&format!("{name}.bias"), &[self.units], Init::Zeros)?;
            return self.activation.apply_with_bias(g, y, b, -1);
        }
        self.activation.apply(g, y)
    }
}

/// 2-D convolution over NCHW images: filters `[filters, C, KH, KW]` (glorot-uniform) and a
/// bias per filter (zeros).
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    /// Output channels.
    pub filters: usize,
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride, padding, dilation.
    pub opts: WindowOpts,
    /// Activation.
    pub activation: Activation,
    /// Filter initialiser.
    pub init: Init,
}

impl Conv2d {
    /// `filters` filters of `kernel` size, stride 1, no padding.
    pub fn new(filters: usize, kernel: (usize, usize)) -> Conv2d {
        Conv2d {
            filters,
            kernel,
            opts: WindowOpts::default(),
            activation: Activation::Identity,
            init: Init::GlorotUniform,
        }
    }
    /// Same stride both ways.
    pub fn stride(mut self, s: usize) -> Conv2d {
        self.opts = self.opts.stride(s);
        self
    }
    /// CNTK-style "same" padding.
    pub fn same(mut self) -> Conv2d {
        self.opts = self.opts.padding(Padding::Same);
        self
    }
    /// Any padding.
    pub fn padding(mut self, p: Padding) -> Conv2d {
        self.opts = self.opts.padding(p);
        self
    }
    /// Same dilation both ways.
    pub fn dilation(mut self, d: usize) -> Conv2d {
        self.opts = self.opts.dilation(d);
        self
    }
    /// ReLU activation.
    pub fn relu(mut self) -> Conv2d {
        self.activation = Activation::Relu;
        self
    }
    /// Sets the filter initialiser.
    pub fn init(mut self, init: Init) -> Conv2d {
        self.init = init;
        self
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let s = g.shape(x);
        if s.rank() != 4 {
            return Err(Error::Shape {
                op: "conv2d",
                msg: format!("{name}: expects [batch, C, H, W], got {s}"),
            });
        }
        let c = s.0[1].resolve(1);
        let w = g.parameter(
            &format!("{name}.weight"),
            &[self.filters, c, self.kernel.0, self.kernel.1],
            self.init,
        )?;
        let b = g.parameter(&format!("{name}.bias"), &[self.filters], Init::Zeros)?;
        let y = g.conv2d(x, w, None, self.opts)?;
        self.activation.apply_with_bias(g, y, b, 1)
    }
}

/// Max pooling.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride and padding.
    pub opts: WindowOpts,
}

impl MaxPool2d {
    /// A `k×k` window with stride `s` and no padding.
    pub fn new(k: usize, s: usize) -> MaxPool2d {
        MaxPool2d {
            kernel: (k, k),
            opts: WindowOpts::default().stride(s),
        }
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "pool"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        g.max_pool2d(x, self.kernel, self.opts)
    }
}

/// Average pooling (over in-image elements).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride and padding.
    pub opts: WindowOpts,
}

impl AvgPool2d {
    /// A `k×k` window with stride `s` and no padding.
    pub fn new(k: usize, s: usize) -> AvgPool2d {
        AvgPool2d {
            kernel: (k, k),
            opts: WindowOpts::default().stride(s),
        }
    }
}

impl Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "pool"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        g.avg_pool2d(x, self.kernel, self.opts)
    }
}

/// Dropout with drop probability `p` (identity in evaluation).
#[derive(Clone, Copy, Debug)]
pub struct Dropout(pub f32);

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        g.dropout(x, self.0)
    }
}

/// CNTK's `Stabilizer`: a learnt scalar gain on its input, `x · softplus(s·β)/s` with
/// steepness s = 4 and `{name}.beta` starting where the gain is 1. Put before a recurrence or
/// a dense layer, it lets the learner scale that layer's input as a whole.
#[derive(Clone, Copy, Debug)]
pub struct Stabilizer {
    /// The steepness s of the softplus.
    pub steepness: f32,
}

impl Default for Stabilizer {
    fn default() -> Self {
        Stabilizer { steepness: 4.0 }
    }
}

impl Layer for Stabilizer {
    fn kind(&self) -> &'static str {
        "stabilizer"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let s = self.steepness;
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::Invalid(format!(
                "Stabilizer {name}: steepness must be positive and finite, got {s}"
            )));
        }
        // softplus(s·β₀)/s = 1.
        let beta0 = ((s as f64).exp_m1().ln() / s as f64) as f32;
        let beta = g.parameter(&format!("{name}.beta"), &[1], Init::Const(beta0))?;
        let gain = g.scale(g.softplus(g.scale(beta, s)?)?, 1.0 / s)?;
        g.mul(x, gain)
    }
}

/// Batch normalisation over axis 1 (channels of NCHW, or features of `[batch, n]`).
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm {
    /// Weight of the new batch statistics in the running averages.
    pub momentum: f32,
    /// Added to the variance.
    pub eps: f32,
}

impl Default for BatchNorm {
    fn default() -> Self {
        BatchNorm {
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "bn"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        g.batch_norm(name, x, 1, self.momentum, self.eps)
    }
}

/// Flattens everything after the batch axis.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        flatten(g, x)
    }
}

/// An embedding (CNTK's `Embedding`): a table `{name}.weight` of `[vocab, dim]`, looked up
/// by index inputs (floats holding 0..vocab, any shape `[..]`): `[.., dim]`. Glorot-uniform
/// by default, or starting from a given matrix ([`Embedding::from_matrix`]).
#[derive(Clone, Debug)]
pub struct Embedding {
    /// Rows of the table.
    pub vocab: usize,
    /// Length of each row.
    pub dim: usize,
    /// The table's initialiser.
    pub init: Init,
    /// The table's initial values, row-major `[vocab, dim]`, when given.
    pub table: Option<std::rc::Rc<[f32]>>,
}

impl Embedding {
    /// A `vocab × dim` table, glorot-uniform.
    pub fn new(vocab: usize, dim: usize) -> Embedding {
        Embedding {
            vocab,
            dim,
            init: Init::GlorotUniform,
            table: None,
        }
    }

    /// A table that starts from `table` (row-major `[vocab, dim]`, e.g. pretrained vectors)
    /// and trains from there; building fails unless it holds vocab · dim finite values.
    pub fn from_matrix(vocab: usize, dim: usize, table: &[f32]) -> Embedding {
        Embedding {
            table: Some(table.into()),
            ..Embedding::new(vocab, dim)
        }
    }

    /// Another initialiser for the table.
    pub fn init(mut self, init: Init) -> Embedding {
        self.init = init;
        self
    }
}

impl Layer for Embedding {
    fn kind(&self) -> &'static str {
        "embed"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let (name, dims) = (format!("{name}.weight"), [self.vocab, self.dim]);
        let w = match &self.table {
            Some(t) => g.parameter_from(&name, &dims, t)?,
            None => g.parameter(&name, &dims, self.init)?,
        };
        g.embedding(x, w)
    }
}

/// An LSTM over a sequence `[batch, seq, F]` (CNTK's `Recurrence(LSTM(hidden))`): the hidden
/// states of every step, `[batch, seq, hidden]`. Parameters `{name}.W` `[F, 4H]` and
/// `{name}.U` `[H, 4H]` (glorot-uniform), `{name}.b` `[4H]` (zeros), gate blocks in CNTK's
/// order (g, i, f, o), a forget-gate bias of 1 by default, zero initial states.
#[derive(Clone, Copy, Debug)]
pub struct Lstm {
    /// Hidden units.
    pub hidden: usize,
    /// Scan from each sequence's last step down.
    pub go_backwards: bool,
    /// Added to the forget gate (1: as a forget bias initialised to 1).
    pub forget_bias: f32,
    /// The recurrent weights' initialiser (glorot-uniform as CNTK; `Init::Orthogonal` as
    /// Keras and Flax).
    pub recurrent_init: Init,
}

impl Lstm {
    /// An LSTM with `hidden` units, forwards.
    pub fn new(hidden: usize) -> Lstm {
        Lstm {
            hidden,
            go_backwards: false,
            forget_bias: 1.0,
            recurrent_init: Init::GlorotUniform,
        }
    }

    /// Runs from each sequence's end to its start.
    pub fn go_backwards(mut self) -> Lstm {
        self.go_backwards = true;
        self
    }
}

impl Layer for Lstm {
    fn kind(&self) -> &'static str {
        "lstm"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let zero = g.scalar(0.0);
        self.build_from(g, name, x, zero, zero)
    }
}

impl Lstm {
    /// The layer started from the states `h0` and `c0` (each `[batch, hidden]`, `[hidden]`
    /// or a scalar) instead of zeros, e.g. a decoder started from its encoder.
    pub fn build_from(
        &self,
        g: &Graph,
        name: &str,
        x: NodeId,
        h0: NodeId,
        c0: NodeId,
    ) -> Result<NodeId> {
        let s = g.shape(x);
        let Some(&Dim::Fixed(features)) = s.0.last().filter(|_| s.has_seq() && s.rank() == 3)
        else {
            return Err(Error::Shape {
                op: "lstm",
                msg: format!("{name}: needs a sequence [batch, seq, features], got {s}"),
            });
        };
        let h4 = 4 * self.hidden;
        let w = g.parameter(&format!("{name}.W"), &[features, h4], Init::GlorotUniform)?;
        let u = g.parameter(
            &format!("{name}.U"),
            &[self.hidden, h4],
            self.recurrent_init,
        )?;
        let b = g.parameter(&format!("{name}.b"), &[h4], Init::Zeros)?;
        let (h, _) = g.lstm(x, w, u, b, h0, c0, self.go_backwards, self.forget_bias)?;
        Ok(h)
    }
}

/// The last step of each sequence (CNTK's `sequence.last`): `[batch, seq, ..] → [batch, ..]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Last;

impl Layer for Last {
    fn kind(&self) -> &'static str {
        "last"
    }
    fn build(&self, g: &Graph, _name: &str, x: NodeId) -> Result<NodeId> {
        g.sequence_last(x)
    }
}

/// Two LSTMs over a sequence, one forwards and one backwards, their hidden states joined
/// per step: `[batch, seq, 2·hidden]` (CNTK's and Keras's `Bidirectional`). Parameters
/// `{name}.fwd.*` and `{name}.bwd.*`.
#[derive(Clone, Copy, Debug)]
pub struct Bidirectional(pub Lstm);

impl Layer for Bidirectional {
    fn kind(&self) -> &'static str {
        "bilstm"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let forwards = Lstm {
            go_backwards: false,
            ..self.0
        };
        let backwards = Lstm {
            go_backwards: true,
            ..self.0
        };
        let f = forwards.build(g, &format!("{name}.fwd"), x)?;
        let b = backwards.build(g, &format!("{name}.bwd"), x)?;
        g.concat(f, b, -1)
    }
}

/// A GRU over a sequence `[batch, seq, F]` (CNTK's `Recurrence(GRU(hidden))`, its
/// convention: `h' = (1 − z)·c + z·h`, the reset gate applied before the candidate's
/// product): the hidden states of every step, `[batch, seq, hidden]`. Parameters `{name}.W`
/// `[F, 3H]`, `{name}.U` `[H, 3H]` (glorot-uniform; blocks z, r, c) and `{name}.b` `[3H]`
/// (zeros), zero initial state.
#[derive(Clone, Copy, Debug)]
pub struct Gru {
    /// Hidden units.
    pub hidden: usize,
    /// Scan from each sequence's last step down.
    pub go_backwards: bool,
}

impl Gru {
    /// A GRU with `hidden` units, forwards.
    pub fn new(hidden: usize) -> Gru {
        Gru {
            hidden,
            go_backwards: false,
        }
    }

    /// Runs from each sequence's end to its start.
    pub fn go_backwards(mut self) -> Gru {
        self.go_backwards = true;
        self
    }
}

impl Layer for Gru {
    fn kind(&self) -> &'static str {
        "gru"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let s = g.shape(x);
        let Some(&Dim::Fixed(features)) = s.0.last().filter(|_| s.has_seq() && s.rank() == 3)
        else {
            return Err(Error::Shape {
                op: "gru",
                msg: format!("{name}: needs a sequence [batch, seq, features], got {s}"),
            });
        };
        let h3 = 3 * self.hidden;
        let w = g.parameter(&format!("{name}.W"), &[features, h3], Init::GlorotUniform)?;
        let u = g.parameter(
            &format!("{name}.U"),
            &[self.hidden, h3],
            Init::GlorotUniform,
        )?;
        let b = g.parameter(&format!("{name}.b"), &[h3], Init::Zeros)?;
        g.gru(x, w, u, b, g.scalar(0.0), self.go_backwards)
    }
}

/// A plain RNN over a sequence (CNTK's `Recurrence(RNNStep(hidden))`): `h' = tanh(x·W + b +
/// h·U)`, the hidden states of every step `[batch, seq, hidden]`. Parameters `{name}.W`
/// `[F, H]`, `{name}.U` `[H, H]` (glorot-uniform) and `{name}.b` `[H]` (zeros).
#[derive(Clone, Copy, Debug)]
pub struct Rnn {
    /// Hidden units.
    pub hidden: usize,
    /// Scan from each sequence's last step down.
    pub go_backwards: bool,
}

impl Rnn {
    /// A plain RNN with `hidden` units, forwards.
    pub fn new(hidden: usize) -> Rnn {
        Rnn {
            hidden,
            go_backwards: false,
        }
    }
}

impl Layer for Rnn {
    fn kind(&self) -> &'static str {
        "rnn"
    }
    fn build(&self, g: &Graph, name: &str, x: NodeId) -> Result<NodeId> {
        let s = g.shape(x);
        let Some(&Dim::Fixed(features)) = s.0.last().filter(|_| s.has_seq() && s.rank() == 3)
        else {
            return Err(Error::Shape {
                op: "rnn",
                msg: format!("{name}: needs a sequence [batch, seq, features], got {s}"),
            });
        };
        let h = self.hidden;
        let w = g.parameter(&format!("{name}.W"), &[features, h], Init::GlorotUniform)?;
        let u = g.parameter(&format!("{name}.U"), &[h, h], Init::GlorotUniform)?;
        let b = g.parameter(&format!("{name}.b"), &[h], Init::Zeros)?;
        g.rnn(x, w, u, b, g.scalar(0.0), self.go_backwards)
    }
}
