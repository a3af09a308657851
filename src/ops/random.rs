//! Dropout (a counter-based mask drawn on the GPU) and the training/evaluation switch,
//! with their gradient rules.

use crate::error::shape_err;
use crate::graph::{Graph, NodeId, Op};
use crate::{Error, Result};

impl Graph {
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

    /// The gradient rules of these ops: (input, contribution) pairs for the gradient `g`
    /// of node `out`; `wants` says which inputs need one.
    pub(crate) fn grad_random(
        &self,
        _out: NodeId,
        op: &Op,
        g: NodeId,
        _wants: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, NodeId)>> {
        let mut res = Vec::new();
        match *op {
            Op::Dropout { x, p, seed } => res.push((x, self.dropout_mask(g, p, seed))),
            // Gradients are only taken in training steps.
            Op::Mode { train, .. } => res.push((train, g)),
            _ => unreachable!("grad_random takes its own ops, not {op:?}"),
        }
        Ok(res)
    }
}
