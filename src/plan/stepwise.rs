//! LSTMs one step at a time (CPU adapters, from `Target::lstm_steps_from` hidden units):
//! each step's recurrent product goes through the tuned matmul kernels (on CPU adapters the
//! texture kernel, its operands copied at every iteration) and a cell kernel
//! does the rest of the step (shaders/lstm_step.wgsl). The step's dispatches are lowered
//! once, as a loop body that the plan replays for every padded step ([`Loop`]), so the plan
//! does not grow with the length. Forwards a step is the product h·U and the cell, which
//! also keeps the step's activated gates in a scratch buffer of the forward node; backwards
//! it is the cell, reading those gates, and dz·Uᵀ (the gradient reaching the previous h).
//!
//! On a CPU adapter the one-kernel scan (recurrence.wgsl) computes the recurrent product
//! with scalar loads of U in every workgroup; a register-tiled product reads each value of U
//! once per tile of the batch instead.

use std::collections::HashMap;

use super::kernel_choice::{matmul_dispatch, Target};
use super::liveness::PlanGraph;
use super::lower::{poison_dispatch, Buf, Dispatch};
use super::summary::{LoopSummary, Role};
use crate::graph::{NodeId, Op};
use crate::kernels::contract::ScanParams;
use crate::kernels::{groups_1d, Gather, Kernel, Params, StepPart};
use crate::Result;

/// Dispatches `first .. first + len` run `times` times in order; those in `per_step` read
/// the iteration as `ScanParams::step`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Loop {
    pub first: usize,
    pub len: usize,
    pub times: usize,
    pub per_step: Vec<usize>,
}

impl Loop {
    /// The loops' per-step dispatches and the parameter blocks each needs (one per step).
    pub(crate) fn per_step_blocks(loops: &[Loop]) -> HashMap<usize, usize> {
        loops
            .iter()
            .flat_map(|l| l.per_step.iter().map(move |&d| (d, l.times)))
            .collect()
    }

    /// What a plan summary says of it.
    pub(crate) fn summary(&self) -> LoopSummary {
        LoopSummary {
            first: self.first,
            len: self.len,
            times: self.times,
        }
    }
}

/// The scratch buffers of a stepwise LSTM: the products' left operands, their outputs, the
/// cell's own, and (of the forward node, read by its reverse) every iteration's gates
/// (lstm_step.wgsl's `ops`, `prods`, `aux`, `gates`).
const OPS: u8 = 0;
const PRODS: u8 = 1;
const AUX: u8 = 2;
const GATES: u8 = 3;

/// `n` floats rounded up to a whole number of 64-float blocks (256 bytes, the binding
/// offset alignment; lstm_step.wgsl's `aligned`).
fn aligned(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// Whether node `i` (an LSTM scan or its reverse) runs one step at a time.
pub(crate) fn wanted(t: &Target, g: &PlanGraph, i: usize) -> bool {
    let (Op::LstmScan { u, .. } | Op::LstmScanGrad { u, .. }) = *g.op(i) else {
        return false;
    };
    t.lstm_steps_from.is_some_and(|from| g.dims[u.0][0] >= from)
}

/// The operands an LSTM node's kernels bind, through `bound` (the fusions' buffer of a node).
struct Operands {
    xproj: Buf,
    u: Buf,
    h0: Buf,
    c0: Buf,
    lengths: Buf,
    /// The forward states, their gradient and the forward node (backwards only).
    state: Option<(Buf, Buf, usize)>,
    backwards: bool,
    forget_bias: f32,
}

fn operands(g: &PlanGraph, i: usize, bound: &dyn Fn(NodeId) -> usize) -> Operands {
    let b = |x: NodeId| Buf::Node(bound(x));
    match *g.op(i) {
        Op::LstmScan {
            xproj,
            u,
            h0,
            c0,
            lengths,
            backwards,
            forget_bias,
        } => Operands {
            xproj: b(xproj),
            u: b(u),
            h0: b(h0),
            c0: b(c0),
            lengths: b(lengths),
            state: None,
            backwards,
            forget_bias,
        },
        Op::LstmScanGrad {
            xproj,
            u,
            h0,
            c0,
            lengths,
            state,
            g: grad,
            backwards,
            forget_bias,
        } => Operands {
            xproj: b(xproj),
            u: b(u),
            h0: b(h0),
            c0: b(c0),
            lengths: b(lengths),
            state: Some((b(state), b(grad), state.0)),
            backwards,
            forget_bias,
        },
        _ => unreachable!("stepwise::lower takes LSTM scans"),
    }
}

/// Appends node `i`'s dispatches (a start, the loop body, and backwards a finish) to `out`
/// and its loop to `loops`.
pub(crate) fn lower(
    t: &Target,
    g: &PlanGraph,
    i: usize,
    bound: &dyn Fn(NodeId) -> usize,
    out: &mut Vec<Dispatch>,
    loops: &mut Vec<Loop>,
) -> Result<()> {
    let o = operands(g, i, bound);
    let (batch, steps) = (g.sizes.batch, g.dims[i][1]);
    let hn = match *g.op(i) {
        Op::LstmScan { u, .. } | Op::LstmScanGrad { u, .. } => g.dims[u.0][0],
        _ => unreachable!("stepwise::lower takes LSTM scans"),
    };
    let (nb, nz) = (batch * hn, batch * 4 * hn);
    let scratch = |part: u8, offset: usize, len: usize| Buf::Scratch {
        node: i,
        part,
        offset,
        len,
    };
    let params = Params::Scan(ScanParams {
        batch: batch as u32,
        steps: steps as u32,
        hidden: hn as u32,
        step: 0,
    });
    let step_kernel = |part| Kernel::LstmStep {
        part,
        backwards: o.backwards,
        forget_bias: o.forget_bias.to_bits(),
    };
    let cell = |part: StepPart, buffers: Vec<Buf>| Dispatch {
        kernel: step_kernel(part),
        params,
        buffers,
        groups: groups_1d(nb),
        label: format!("LstmStep {part:?} [{batch}, {hn}]"),
        role: Role::Compute(NodeId::at(i)),
        output: g.dims[i].clone(),
        alpha: 1.0,
    };
    // `a · U` (or `a · Uᵀ` when `tb`) into `z`, [batch, n].
    let product = |a: Buf, z: Buf, n: usize, k: usize, tb: bool| -> Result<Dispatch> {
        let (kernel, params, groups) =
            matmul_dispatch(t, [batch, n, k], [0, 0, 1, 1], false, tb, Gather::None)?;
        Ok(Dispatch {
            kernel,
            params,
            buffers: vec![a, o.u, z, a],
            groups,
            label: format!("{kernel:?} LSTM step [{batch}, {n}]"),
            role: Role::Compute(NodeId::at(i)),
            output: vec![batch, n],
            alpha: 1.0,
        })
    };
    if t.poison {
        out.push(poison_dispatch(g, i));
    }
    let this = Buf::Node(i);
    // The forward iterations' gates, [steps, batch, 4H] in the forward node's scratch.
    let gates = |node: usize| Buf::Scratch {
        node,
        part: GATES,
        offset: 0,
        len: steps * nz,
    };
    let Some((state, grad, forward)) = o.state else {
        let (h, c, zh) = (
            scratch(OPS, 0, nb),
            scratch(AUX, 0, nb),
            scratch(PRODS, 0, nz),
        );
        out.push(cell(StepPart::Start, vec![o.h0, o.c0, h, c]));
        let first = out.len();
        out.push(product(h, zh, 4 * hn, hn, false)?);
        out.push(cell(
            StepPart::Forward,
            vec![o.xproj, o.lengths, zh, h, c, this, gates(i)],
        ));
        loops.push(Loop {
            first,
            len: 2,
            times: steps,
            per_step: vec![first + 1],
        });
        return Ok(());
    };
    // The reverse reads the gates its forward node kept, so that node must have been
    // lowered one step at a time in this plan too (the same rule chooses both).
    if !(matches!(g.op(forward), Op::LstmScan { .. }) && wanted(t, g, forward)) {
        return Err(crate::Error::Invalid(format!(
            "plan: the stepwise LSTM reverse (node {i}) needs its forward scan (node              {forward}) lowered one step at a time in the same plan"
        )));
    }
    let ops = scratch(OPS, 0, nz);
    let prods = scratch(PRODS, 0, nb);
    let aux = scratch(AUX, 0, 3 * aligned(nb));
    out.push(cell(StepPart::BackStart, vec![o.h0, o.c0, prods, aux]));
    let first = out.len();
    out.push(cell(
        StepPart::Backward,
        vec![
            o.lengths,
            state,
            grad,
            prods,
            ops,
            aux,
            this,
            gates(forward),
        ],
    ));
    // The gradient reaching the previous h: dz · Uᵀ.
    out.push(product(ops, prods, hn, 4 * hn, true)?);
    loops.push(Loop {
        first,
        len: 2,
        times: steps,
        per_step: vec![first],
    });
    out.push(cell(StepPart::BackFinish, vec![o.lengths, prods, this]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::aligned;

    #[test]
    fn parts_start_at_256_bytes() {
        assert_eq!(aligned(0), 0);
        assert_eq!(aligned(1), 64);
        assert_eq!(aligned(64), 64);
        assert_eq!(aligned(65), 128);
    }
}
