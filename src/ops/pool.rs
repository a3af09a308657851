//! Max and average pooling over 2-D windows, with their gradient rule.

use super::conv::{window, WindowOpts};
use crate::graph::{Graph, NodeId, Op, Window};
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

impl Graph {
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

    /// Average pooling of `x: [N, C, H, W]` that counts padded cells, as zeros, in every
    /// window (ONNX's `count_include_pad = 1`, PyTorch's default): each output is the
    /// window's sum over `kh·kw`. The padding is written out and the windows pooled without
    /// it. Errors as [`Graph::avg_pool2d`], and for a dilation other than 1.
    pub fn avg_pool2d_counting_pads(
        &self,
        x: NodeId,
        kernel: (usize, usize),
        opts: WindowOpts,
    ) -> Result<NodeId> {
        let op = "avg_pool2d_counting_pads";
        let s = self.check(op, x)?;
        let win = window(op, &s, kernel, opts)?;
        if opts.dilation != (1, 1) {
            return Err(Error::Invalid(format!(
                "{op}: dilation {:?} is not supported (only 1)",
                opts.dilation
            )));
        }
        // The end pads the output size needs: the last window's end past the lead pad.
        let end = |o: usize, st: usize, k: usize, i: usize, p: usize| {
            ((o - 1) * st + k).saturating_sub(i + p)
        };
        let eh = end(win.oh, win.sh, win.kh, win.h, win.ph);
        let ew = end(win.ow, win.sw, win.kw, win.w, win.pw);
        let mut y = x;
        let mut dims = s.0.clone();
        for (axis, lead, extra) in [(2, win.ph, eh), (3, win.pw, ew)] {
            if lead + extra > 0 {
                dims[axis] = Dim::Fixed(dims[axis].resolve(1) + lead + extra);
                y = self.pad_to(y, axis, lead, Shape(dims.clone()));
            }
        }
        let valid = WindowOpts {
            stride: opts.stride,
            ..WindowOpts::default()
        };
        self.pool(op, y, kernel, valid, false)
    }

    pub(crate) fn pool_grad(&self, x: NodeId, g: NodeId, win: Window, max: bool) -> NodeId {
        let s = self.shape(x);
        self.push(Op::PoolGrad { x, g, win, max }, s)
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_pool(
        &self,
        _out: NodeId,
        op: &Op,
        g: NodeId,
        _wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let mut res = Vec::new();
        match *op {
            Op::Pool { x, win, max } => res.push((x, self.pool_grad(x, g, win, max))),
            Op::PoolGrad { .. } => {
                return Err(Error::Invalid(
                    "grad: second derivatives through pooling are not supported".into(),
                ))
            }
            _ => unreachable!("grad_pool takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
