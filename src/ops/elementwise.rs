//! Elementwise ops: unary functions and broadcasting binary functions, with their
//! gradient rules and unary.wgsl's codes. A broadcast operand's gradient is summed back to
//! its shape.

use crate::graph::{BinaryOp, Graph, NodeId, Op, UnaryOp};
use crate::shape::Shape;
use crate::{Error, Result};

impl Graph {
    /// Elementwise unary function.
    pub fn unary(&self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        let s = self.check("unary", x)?;
        Ok(self.push(Op::Unary { op, x }, s))
    }

    /// -x
    pub fn neg(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Neg, x)
    }

    /// e^x
    pub fn exp(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Exp, x)
    }

    /// ln(1 + e^x), stable for any x
    pub fn softplus(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Softplus, x)
    }

    /// ln x
    pub fn log(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Log, x)
    }

    /// √x
    pub fn sqrt(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sqrt, x)
    }

    /// |x|; its gradient at 0 is 0 (the sign of 0).
    pub fn abs(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Abs, x)
    }

    /// sign(x)
    pub fn sign(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sign, x)
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sigmoid, x)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Tanh, x)
    }

    /// max(x, 0), NaN for NaN (as PyTorch); its gradient at 0 is 0.
    pub fn relu(&self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Relu, x)
    }

    /// s · x
    pub fn scale(&self, x: NodeId, s: f32) -> Result<NodeId> {
        self.unary(UnaryOp::Scale(s), x)
    }

    /// Elementwise binary function with numpy broadcasting.
    pub fn binary(&self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        let name = binary_name(op);
        let sa = self.check(name, a)?;
        let sb = self.check(name, b)?;
        let s = Shape::broadcast(name, &sa, &sb)?;
        Ok(self.push(Op::Binary { op, a, b }, s))
    }

    /// a + b
    pub fn add(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Add, a, b)
    }

    /// a - b
    pub fn sub(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }

    /// a · b (elementwise)
    pub fn mul(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Mul, a, b)
    }

    /// a / b
    pub fn div(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Div, a, b)
    }

    /// max(a, b), NaN if either is NaN. On a tie (a = b) the whole gradient goes to `a`.
    pub fn maximum(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Max, a, b)
    }

    /// min(a, b), NaN if either is NaN. On a tie (a = b) the whole gradient goes to `a`.
    pub fn minimum(&self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Min, a, b)
    }

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_elementwise(
        &self,
        out: NodeId,
        op: &Op,
        g: NodeId,
        wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let shape = |x: NodeId| self.shape(x);
        let mut res = Vec::new();
        match *op {
            Op::Unary { op, x } => {
                let gx = match op {
                    UnaryOp::Neg => Some(self.neg(g)?),
                    UnaryOp::Scale(s) => Some(self.scale(g, s)?),
                    UnaryOp::Exp => Some(self.mul(g, out)?),
                    UnaryOp::Log => Some(self.div(g, x)?),
                    UnaryOp::Sqrt => Some(self.div(g, self.scale(out, 2.0)?)?),
                    UnaryOp::Abs => Some(self.mul(g, self.sign(x)?)?),
                    UnaryOp::Sign => None,
                    UnaryOp::Sigmoid => Some(self.binary(BinaryOp::SigmoidGrad, out, g)?),
                    UnaryOp::Tanh => Some(self.binary(BinaryOp::TanhGrad, out, g)?),
                    UnaryOp::Relu => Some(self.binary(BinaryOp::ReluGrad, x, g)?),
                    UnaryOp::Softplus => Some(self.mul(g, self.sigmoid(x)?)?),
                };
                if let Some(gx) = gx {
                    res.push((x, gx));
                }
            }
            Op::Binary { op, a, b } => {
                let (ga, gb) = match op {
                    BinaryOp::Add => (Some(g), Some(g)),
                    BinaryOp::Sub => (Some(g), Some(self.neg(g)?)),
                    BinaryOp::Mul => (
                        wants(a).then(|| self.mul(g, b)).transpose()?,
                        wants(b).then(|| self.mul(g, a)).transpose()?,
                    ),
                    BinaryOp::Div => (
                        wants(a).then(|| self.div(g, b)).transpose()?,
                        if wants(b) {
                            Some(self.neg(self.div(self.mul(g, out)?, b)?)?)
                        } else {
                            None
                        },
                    ),
                    BinaryOp::Max | BinaryOp::Min => {
                        // Ties send the gradient to a.
                        let (to_a, to_b) = if op == BinaryOp::Max {
                            (BinaryOp::Ge, BinaryOp::Lt)
                        } else {
                            (BinaryOp::Le, BinaryOp::Gt)
                        };
                        (
                            Some(self.mul(g, self.binary(to_a, a, b)?)?),
                            Some(self.mul(g, self.binary(to_b, a, b)?)?),
                        )
                    }
                    BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Eq => {
                        (None, None)
                    }
                    BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad => {
                        return Err(Error::Invalid(format!(
                            "grad: second derivatives through {op:?} are not supported"
                        )))
                    }
                };
                for (x, gx) in [(a, ga), (b, gb)] {
                    if let (true, Some(gx)) = (wants(x), gx) {
                        res.push((x, self.sum_to(gx, &shape(x), None)?));
                    }
                }
            }
            _ => unreachable!("grad_elementwise takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Max => "maximum",
        BinaryOp::Min => "minimum",
        _ => "compare",
    }
}

/// unary.wgsl's functions (`UnaryParams::op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum UnaryCode {
    Neg = 0,
    Exp,
    Log,
    Sqrt,
    Abs,
    Sign,
    Sigmoid,
    Tanh,
    Relu,
    Softplus,
    /// The identity (times the block's alpha).
    Scale = 99,
}

impl UnaryCode {
    /// Every code.
    pub(crate) const ALL: [UnaryCode; 11] = [
        UnaryCode::Neg,
        UnaryCode::Exp,
        UnaryCode::Log,
        UnaryCode::Sqrt,
        UnaryCode::Abs,
        UnaryCode::Sign,
        UnaryCode::Sigmoid,
        UnaryCode::Tanh,
        UnaryCode::Relu,
        UnaryCode::Softplus,
        UnaryCode::Scale,
    ];
}

impl UnaryCode {
    /// The code and output scale of a graph's unary function.
    pub(crate) fn of(op: UnaryOp) -> (UnaryCode, f32) {
        let code = match op {
            UnaryOp::Neg => UnaryCode::Neg,
            UnaryOp::Exp => UnaryCode::Exp,
            UnaryOp::Log => UnaryCode::Log,
            UnaryOp::Sqrt => UnaryCode::Sqrt,
            UnaryOp::Abs => UnaryCode::Abs,
            UnaryOp::Sign => UnaryCode::Sign,
            UnaryOp::Sigmoid => UnaryCode::Sigmoid,
            UnaryOp::Tanh => UnaryCode::Tanh,
            UnaryOp::Relu => UnaryCode::Relu,
            UnaryOp::Softplus => UnaryCode::Softplus,
            UnaryOp::Scale(s) => return (UnaryCode::Scale, s),
        };
        (code, 1.0)
    }
}
