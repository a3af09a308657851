//! Convolution: window geometry, im2col and its adjoint col2im, conv2d (composed of
//! im2col, a product and reshapes, so its gradient comes from theirs), and the fused
//! bias + activation of dense and convolution layers, with their gradient rules.

use crate::error::shape_err;
use crate::graph::{BinaryOp, Graph, NodeId, Op, UnaryOp, Window};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// Zero padding of a convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows stay inside the image.
    Valid,
    /// CNTK's auto-padding: output size = ceil(input / stride), windows centred; the
    /// leading pad is (window - 1) / 2, so an odd extra row or column goes first.
    Same,
    /// TensorFlow's and ONNX's `SAME_UPPER`: output size = ceil(input / stride), the total
    /// padding split evenly with the extra row or column last.
    SameUpper,
    /// ONNX's `SAME_LOWER`: as [`Padding::SameUpper`] with the extra row or column first.
    SameLower,
    /// Explicit symmetric padding (rows, columns).
    Explicit(usize, usize),
    /// Explicit padding, each side on its own: `begin` (top, left) and `end` (bottom,
    /// right), as ONNX's `pads`.
    Pads {
        /// Rows above and columns on the left.
        begin: (usize, usize),
        /// Rows below and columns on the right.
        end: (usize, usize),
    },
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
    let pick = |p: (usize, usize)| [p.0, p.1][which];
    let (begin, end) = match pad {
        Padding::Same => {
            let out = input.div_ceil(s);
            return Ok((out, (eff - 1) / 2));
        }
        Padding::SameUpper | Padding::SameLower => {
            let out = input.div_ceil(s);
            let total = ((out - 1) * s + eff).saturating_sub(input);
            let lead = match pad {
                Padding::SameUpper => total / 2,
                _ => total - total / 2,
            };
            return Ok((out, lead));
        }
        Padding::Valid => (0, 0),
        Padding::Explicit(ph, pw) => (pick((ph, pw)), pick((ph, pw))),
        Padding::Pads { begin, end } => (pick(begin), pick(end)),
    };
    if input + begin + end < eff {
        return shape_err(
            op,
            format!(
                "window {eff} (kernel {k}, dilation {d}) is larger than the padded input {}",
                input + begin + end
            ),
        );
    }
    let (out, lead) = ((input + begin + end - eff) / s + 1, begin);
    Ok((out, lead))
}

pub(crate) fn window(
    op: &'static str,
    x: &Shape,
    k: (usize, usize),
    o: WindowOpts,
) -> Result<Window> {
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

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_conv(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let mut res = Vec::new();
        match *op {
            Op::Im2Col { x, win } => res.push((x, self.col2im(g, win))),
            Op::Col2Im { x, win } => res.push((x, self.im2col_win(g, win))),
            Op::BiasAct { x, b, axis, act } => {
                let gz = match act {
                    None => g,
                    Some(UnaryOp::Relu) => self.binary(BinaryOp::ReluGrad, out, g)?,
                    Some(UnaryOp::Sigmoid) => self.binary(BinaryOp::SigmoidGrad, out, g)?,
                    Some(_) => self.binary(BinaryOp::TanhGrad, out, g)?,
                };
                if wants(b) {
                    res.push((b, self.channel_sum(gz, axis as isize)?));
                }
                res.push((x, gz));
            }
            _ => unreachable!("grad_conv takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
