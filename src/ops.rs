//! Neural-network ops on [`Graph`]: convolution, pooling, data movement, dropout, batch
//! normalisation and the losses beyond cross-entropy. Convolution is composed from
//! primitives (im2col, matmul, reshape, add), so its gradients come from their rules.

use crate::error::shape_err;
use crate::graph::{Graph, Init, NodeId, Op, ReduceOp, Window};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// Zero padding of a convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows stay inside the image.
    Valid,
    /// CNTK's auto-padding: output size = ceil(input / stride), windows centred.
    Same,
    /// Explicit symmetric padding (rows, columns).
    Explicit(usize, usize),
}

/// Stride, padding and dilation of a 2-D window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOpts {
    /// (vertical, horizontal) stride.
    pub stride: (usize, usize),
    /// Padding.
    pub padding: Padding,
    /// (vertical, horizontal) dilation.
    pub dilation: (usize, usize),
}

impl Default for WindowOpts {
    fn default() -> Self {
        WindowOpts {
            stride: (1, 1),
            padding: Padding::Valid,
            dilation: (1, 1),
        }
    }
}

impl WindowOpts {
    /// Same stride both ways.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// Padding.
    pub fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Same dilation both ways.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
}

/// Output size and leading pad of one spatial axis.
fn axis_geometry(
    op: &'static str,
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Padding,
    which: usize,
) -> Result<(usize, usize)> {
    if k == 0 || s == 0 || d == 0 {
        return shape_err(
            op,
            format!("kernel {k}, stride {s} and dilation {d} must be positive"),
        );
    }
    let eff = (k - 1) * d + 1;
    let (out, lead) = match pad {
        Padding::Same => (input.div_ceil(s), (eff - 1) / 2),
        Padding::Valid | Padding::Explicit(..) => {
            let p = match pad {
                Padding::Explicit(ph, pw) => [ph, pw][which],
                _ => 0,
            };
            if input + 2 * p < eff {
                return shape_err(op, format!("window {eff} (kernel {k}, dilation {d}) is larger than the padded input {}", input + 2 * p));
            }
            ((input + 2 * p - eff) / s + 1, p)
        }
    };
    Ok((out, lead))
}

fn window(op: &'static str, x: &Shape, k: (usize, usize), o: WindowOpts) -> Result<Window> {
    if x.rank() != 4 || x.0[1..].contains(&Dim::Batch) {
        return shape_err(
            op,
            format!("expects an NCHW image [batch, C, H, W], got {x}"),
        );
    }
    let d = x.resolve(1);
    let (oh, ph) = axis_geometry(op, d[2], k.0, o.stride.0, o.dilation.0, o.padding, 0)?;
    let (ow, pw) = axis_geometry(op, d[3], k.1, o.stride.1, o.dilation.1, o.padding, 1)?;
    Ok(Window {
        c: d[1],
        h: d[2],
        w: d[3],
        kh: k.0,
        kw: k.1,
        sh: o.stride.0,
        sw: o.stride.1,
        ph,
        pw,
        dh: o.dilation.0,
        dw: o.dilation.1,
        oh,
        ow,
    })
}

impl Graph {
    /// The sliding windows of `x: [N, C, H, W]` as rows: `[N, OH·OW, C·KH·KW]`.
    pub fn im2col(&self, x: NodeId, kernel: (usize, usize), opts: WindowOpts) -> Result<NodeId> {
        let s = self.check("im2col", x)?;
        let win = window("im2col", &s, kernel, opts)?;
        Ok(self.push_im2col(x, win, s.0[0]))
    }

    fn push_im2col(&self, x: NodeId, win: Window, n: Dim) -> NodeId {
        let shape = Shape(vec![
            n,
            Dim::Fixed(win.oh * win.ow),
            Dim::Fixed(win.c * win.kh * win.kw),
        ]);
        self.push(Op::Im2Col { x, win }, shape)
    }

    pub(crate) fn im2col_win(&self, x: NodeId, win: Window) -> NodeId {
        let n = self.shape(x).0[0];
        self.push_im2col(x, win, n)
    }

    pub(crate) fn col2im(&self, x: NodeId, win: Window) -> NodeId {
        let n = self.shape(x).0[0];
        let shape = Shape(vec![
            n,
            Dim::Fixed(win.c),
            Dim::Fixed(win.h),
            Dim::Fixed(win.w),
        ]);
        self.push(Op::Col2Im { x, win }, shape)
    }

    /// 2-D convolution (cross-correlation, as in every framework) of `x: [N, C, H, W]` with
    /// `w: [O, C, KH, KW]` and an optional bias `[O]`: `[N, O, OH, OW]`.
    pub fn conv2d(
        &self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        opts: WindowOpts,
    ) -> Result<NodeId> {
        let (sx, sw) = (self.check("conv2d", x)?, self.check("conv2d", w)?);
        if sw.rank() != 4 || sw.has_batch() {
            return shape_err(
                "conv2d",
                format!("filters must be [out, in, kh, kw], got {sw}"),
            );
        }
        let f = sw.resolve(1);
        if sx.rank() == 4 && sx.0[1] != Dim::Fixed(f[1]) {
            return shape_err(
                "conv2d",
                format!(
                    "input {sx} has {} channels but filters {sw} expect {}",
                    sx.0[1].resolve(0),
                    f[1]
                ),
            );
        }
        let win = window("conv2d", &sx, (f[2], f[3]), opts)?;
        let cols = self.push_im2col(x, win, sx.0[0]);
        let wm = self.reshape(w, Shape::fixed(&[f[0], f[1] * f[2] * f[3]]))?;
        let y = self.matmul_t(wm, cols, false, true)?; // [N, O, OH·OW]
        let y = self.reshape(
            y,
            Shape(vec![
                sx.0[0],
                Dim::Fixed(f[0]),
                Dim::Fixed(win.oh),
                Dim::Fixed(win.ow),
            ]),
        )?;
        match bias {
            None => Ok(y),
            Some(b) => {
                let sb = self.check("conv2d", b)?;
                if sb != Shape::fixed(&[f[0]]) {
                    return shape_err("conv2d", format!("bias must be [{}], got {sb}", f[0]));
                }
                self.bias_act(y, b, 1, None)
            }
        }
    }

    /// `act(x + b)`, with `b: [C]` added along `axis` of `x` (C its length) and `act`
    /// one of `Relu`, `Sigmoid`, `Tanh` or none: one kernel where `add` then an activation
    /// would take two (and a broadcast). Dense and convolution layers use it.
    pub fn bias_act(
        &self,
        x: NodeId,
        b: NodeId,
        axis: isize,
        act: Option<crate::UnaryOp>,
    ) -> Result<NodeId> {
        use crate::UnaryOp::{Relu, Sigmoid, Tanh};
        let (sx, sb) = (self.check("bias_act", x)?, self.check("bias_act", b)?);
        let axis = sx.axis("bias_act", axis)?;
        let Dim::Fixed(c) = sx.0[axis] else {
            return shape_err(
                "bias_act",
                format!("axis {axis} of {sx} is the batch axis, not a channel axis"),
            );
        };
        if sb != Shape::fixed(&[c]) {
            return shape_err(
                "bias_act",
                format!("bias {sb} does not match axis {axis} of {sx} (expected [{c}])"),
            );
        }
        if let Some(a) = act {
            if !matches!(a, Relu | Sigmoid | Tanh) {
                return Err(Error::Invalid(format!(
                    "bias_act: activation {a:?} is not fused; use relu, sigmoid, tanh or none"
                )));
            }
        }
        Ok(self.push(Op::BiasAct { x, b, axis, act }, sx))
    }

    /// Σ of `x` over every axis but `axis`: `[C]`, C the length of `axis`.
    pub fn channel_sum(&self, x: NodeId, axis: isize) -> Result<NodeId> {
        let sx = self.check("channel_sum", x)?;
        let axis = sx.axis("channel_sum", axis)?;
        let Dim::Fixed(c) = sx.0[axis] else {
            return shape_err(
                "channel_sum",
                format!("axis {axis} of {sx} is the batch axis"),
            );
        };
        Ok(self.push(Op::ChannelSum { x, axis }, Shape::fixed(&[c])))
    }

    fn pool(
        &self,
        op: &'static str,
        x: NodeId,
        kernel: (usize, usize),
        opts: WindowOpts,
        max: bool,
    ) -> Result<NodeId> {
        let s = self.check(op, x)?;
        let win = window(op, &s, kernel, opts)?;
        let shape = Shape(vec![s.0[0], s.0[1], Dim::Fixed(win.oh), Dim::Fixed(win.ow)]);
        Ok(self.push(Op::Pool { x, win, max }, shape))
    }

    /// Max pooling of `x: [N, C, H, W]`; padding never wins the max.
    pub fn max_pool2d(
        &self,
        x: NodeId,
        kernel: (usize, usize),
        opts: WindowOpts,
    ) -> Result<NodeId> {
        self.pool("max_pool2d", x, kernel, opts, true)
    }

    /// Average pooling of `x: [N, C, H, W]` over each window's in-image elements (padding
    /// is not counted, as in CNTK).
    pub fn avg_pool2d(
        &self,
        x: NodeId,
        kernel: (usize, usize),
        opts: WindowOpts,
    ) -> Result<NodeId> {
        self.pool("avg_pool2d", x, kernel, opts, false)
    }

    pub(crate) fn pool_grad(&self, x: NodeId, g: NodeId, win: Window, max: bool) -> NodeId {
        let s = self.shape(x);
        self.push(Op::PoolGrad { x, g, win, max }, s)
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

    /// One-hot rows `[.., classes]` from class indices stored as floats (`[..]`); an index
    /// outside `0..classes` gives a zero row.
    pub fn one_hot(&self, indices: NodeId, classes: usize) -> Result<NodeId> {
        let mut s = self.check("one_hot", indices)?;
        if classes == 0 {
            return shape_err("one_hot", "needs at least one class".to_string());
        }
        s.0.push(Dim::Fixed(classes));
        Ok(self.push(Op::OneHot { x: indices }, s))
    }

    /// `train` while training, `eval` in evaluation; shapes must match.
    pub fn mode(&self, train: NodeId, eval: NodeId) -> Result<NodeId> {
        let (st, se) = (self.check("mode", train)?, self.check("mode", eval)?);
        if st != se {
            return shape_err(
                "mode",
                format!("training value {st} and evaluation value {se} differ"),
            );
        }
        Ok(self.push(Op::Mode { train, eval }, st))
    }

    pub(crate) fn dropout_mask(&self, x: NodeId, p: f32, seed: u64) -> NodeId {
        let s = self.shape(x);
        self.push(Op::Dropout { x, p, seed }, s)
    }

    /// Dropout with drop probability `p`: in training each element is zeroed with
    /// probability p and the rest scaled by 1/(1-p); in evaluation it is the identity. The
    /// mask is drawn on the GPU from (seed, step, element), so runs are reproducible.
    pub fn dropout(&self, x: NodeId, p: f32) -> Result<NodeId> {
        self.check("dropout", x)?;
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!(
                "dropout: probability {p} is not in [0, 1)"
            )));
        }
        if p == 0.0 {
            return Ok(x);
        }
        let d = self.dropout_mask(x, p, self.next_seed());
        self.mode(d, x)
    }

    /// Batch normalisation over every axis but `axis` (1 for NCHW images and for
    /// `[batch, features]`): training uses the minibatch's statistics and updates the
    /// running averages `{name}.running_mean` / `.running_var` (momentum `momentum`, unbiased
    /// variance); evaluation uses the running averages. Learnable `{name}.scale` (ones) and
    /// `{name}.shift` (zeros).
    pub fn batch_norm(
        &self,
        name: &str,
        x: NodeId,
        axis: usize,
        momentum: f32,
        eps: f32,
    ) -> Result<NodeId> {
        let s = self.check("batch_norm", x)?;
        if axis >= s.rank() || s.0[axis] == Dim::Batch {
            return shape_err(
                "batch_norm",
                format!("feature axis {axis} is not a fixed axis of {s}"),
            );
        }
        let c = s.0[axis].resolve(0);
        let mut pshape = vec![1usize; s.rank()];
        pshape[axis] = c;
        let scale = self.parameter(&format!("{name}.scale"), &pshape, Init::Const(1.0))?;
        let shift = self.parameter(&format!("{name}.shift"), &pshape, Init::Zeros)?;
        let rmean = self.variable(&format!("{name}.running_mean"), &pshape, Init::Zeros, false)?;
        let rvar = self.variable(
            &format!("{name}.running_var"),
            &pshape,
            Init::Const(1.0),
            false,
        )?;
        let axes: Vec<isize> = (0..s.rank())
            .filter(|&a| a != axis)
            .map(|a| a as isize)
            .collect();
        // Training: statistics of this minibatch.
        let mean = self.reduce(ReduceOp::Mean, x, &axes, true)?;
        let centred = self.sub(x, mean)?;
        let var = self.reduce(ReduceOp::Mean, self.mul(centred, centred)?, &axes, true)?;
        let train = self.div(centred, self.sqrt(self.add(var, self.scalar(eps))?)?)?;
        // Evaluation: running statistics.
        let eval = self.div(
            self.sub(x, rmean)?,
            self.sqrt(self.add(rvar, self.scalar(eps))?)?,
        )?;
        let norm = self.mode(train, eval)?;
        // Running averages, updated at the end of each training step. The unbiased variance
        // needs the count n of reduced elements, known only per batch: var·n/(n-1), with
        // n/(n-1) computed from a ones tensor shaped like x.
        let n = self.reduce(
            ReduceOp::Sum,
            self.add(self.mul(x, self.scalar(0.0))?, self.scalar(1.0))?,
            &axes,
            true,
        )?;
        let unbiased = self.div(
            self.mul(var, n)?,
            self.maximum(self.sub(n, self.scalar(1.0))?, self.scalar(1.0))?,
        )?;
        let m = momentum;
        let new_mean = self.add(self.scale(rmean, 1.0 - m)?, self.scale(mean, m)?)?;
        let new_var = self.add(self.scale(rvar, 1.0 - m)?, self.scale(unbiased, m)?)?;
        self.assign(rmean, new_mean)?;
        self.assign(rvar, new_var)?;
        self.add(self.mul(norm, scale)?, shift)
    }

    // ---- losses ----------------------------------------------------------------------

    /// Binary cross-entropy on logits, per element: `softplus(z) − z·t`, which equals
    /// `−t·ln σ(z) − (1−t)·ln(1−σ(z))` without overflow for any z.
    pub fn binary_cross_entropy_with_logits(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let (sz, st) = (
            self.check("binary_cross_entropy", z)?,
            self.check("binary_cross_entropy", t)?,
        );
        if sz != st {
            return shape_err(
                "binary_cross_entropy",
                format!("logits {sz} and targets {st} differ"),
            );
        }
        self.sub(self.softplus(z)?, self.mul(z, t)?)
    }

    /// CNTK's `squared_error`: per row, Σ over the last axis of (z − t)².
    pub fn squared_error(&self, z: NodeId, t: NodeId) -> Result<NodeId> {
        let (sz, st) = (
            self.check("squared_error", z)?,
            self.check("squared_error", t)?,
        );
        if sz != st {
            return shape_err(
                "squared_error",
                format!("predictions {sz} and targets {st} differ"),
            );
        }
        let d = self.sub(z, t)?;
        self.reduce_sum(self.mul(d, d)?, &[-1])
    }

    /// Softmax cross-entropy against class indices `[..]` (floats holding 0..classes)
    /// instead of one-hot rows.
    pub fn cross_entropy_with_softmax_indices(&self, z: NodeId, indices: NodeId) -> Result<NodeId> {
        let sz = self.check("cross_entropy_with_softmax", z)?;
        let classes = match sz.0.last() {
            Some(Dim::Fixed(c)) => *c,
            _ => {
                return shape_err(
                    "cross_entropy_with_softmax",
                    format!("scores {sz} need a fixed class axis"),
                )
            }
        };
        let t = self.one_hot(indices, classes)?;
        self.cross_entropy_with_softmax(z, t)
    }
}
