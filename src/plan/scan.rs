//! Lowering of general scans ([`Op::Scan`], built by `ops/scan.rs`): the initial values
//! copied into the carries, then a loop body replayed once per padded step — a pick of each
//! input sequence's step into its step value, the body's nodes with their own kernels, and
//! the carries' commits (scan_step.wgsl). Only the picks and commits read the iteration, so
//! the body is lowered once and the plan does not grow with the length.

use super::fuse::Fusions;
use super::kernel_choice::Target;
use super::liveness::{Liveness, PlanGraph};
use super::lower::{copy_dispatch, node_dispatches, poison_dispatch, Buf, Dispatch};
use super::stepwise::Loop;
use super::summary::Role;
use crate::graph::{NodeId, Op, ScanSpec};
use crate::kernels::contract::StepParams;
use crate::kernels::{groups_1d, Kernel, Params, ScanIo};
use crate::{Error, Result};

/// Fails when a node outside every scan reads a value that only exists inside one (a node
/// the step function made, kept and used after the recurrence, whose scan this plan may not
/// even run).
pub(crate) fn check_reads(g: &PlanGraph, live: &Liveness) -> Result<()> {
    for i in live.needed().filter(|&i| !live.in_scan(i)) {
        if matches!(g.op(i), Op::Scan(_) | Op::ScanFinal { .. }) {
            continue;
        }
        let inside = |j: &NodeId| live.in_scan(j.0) || matches!(g.op(j.0), Op::StepValue);
        if let Some(j) = g.reads(i).into_iter().find(inside) {
            return Err(Error::Invalid(format!(
                "recurrence: node {i} reads node {}, which exists only inside a recurrence's \
                 step; use the states the recurrence returns",
                j.0
            )));
        }
    }
    Ok(())
}

/// Appends scan `i`'s dispatches to `out` and its loop to `loops`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower(
    g: &PlanGraph,
    t: &Target,
    live: &Liveness,
    f: &Fusions,
    i: usize,
    spec: &ScanSpec,
    out: &mut Vec<Dispatch>,
    loops: &mut Vec<Loop>,
) -> Result<()> {
    let (batch, steps, width) = (g.dims[i][0], g.dims[i][1], g.dims[i][2]);
    let node = |x: NodeId| Buf::Node(x.0);
    let per_sample = |x: NodeId| g.numel(x.0) / batch.max(1);
    let io = |x: NodeId, width: usize, offset: usize| -> Params {
        Params::Step(StepParams {
            batch: batch as u32,
            steps: steps as u32,
            inner: per_sample(x) as u32,
            step: 0,
            width: width as u32,
            offset: offset as u32,
            backwards: spec.backwards as u32,
            reverse: spec.reverse as u32,
        })
    };
    let dispatch = |kind: ScanIo, params: Params, buffers: Vec<Buf>, x: NodeId| Dispatch {
        kernel: Kernel::ScanIo(kind),
        params,
        buffers,
        groups: groups_1d(batch * per_sample(x)),
        label: format!("scan {kind:?} [{batch}, {}]", per_sample(x)),
        role: Role::Compute(NodeId::at(i)),
        output: g.dims[x.0].clone(),
        alpha: 1.0,
    };
    if t.poison {
        out.push(poison_dispatch(g, i));
    }
    for c in &spec.carries {
        let n = g.numel(c.value.0);
        let label = format!("scan initial value [{n}]");
        out.push(copy_dispatch(
            n,
            vec![node(c.init), node(c.value)],
            Role::Compute(NodeId::at(i)),
            label,
        ));
    }
    let first = out.len();
    let mut per_step = Vec::new();
    for &(x, v) in &spec.steps {
        per_step.push(out.len());
        let params = io(v, per_sample(v), 0);
        let buffers = vec![node(spec.lengths), node(x), node(v)];
        out.push(dispatch(ScanIo::Pick, params, buffers, v));
    }
    let absorbed = f.absorbed();
    for b in spec.body.iter().filter(|b| !f.skipped(&absorbed, b.0)) {
        node_dispatches(g, t, live, f, b.0, out)?;
    }
    let mut offset = 0;
    let root = |x: NodeId| live.alias_root[x.0];
    for c in &spec.carries {
        let same = root(c.next) == root(c.value);
        let kind = match (c.masked, c.recorded, same) {
            (true, true, false) => Some(ScanIo::Commit),
            (true, false, false) => Some(ScanIo::Hold),
            (_, true, true) => Some(ScanIo::Emit),
            (false, true, false) => {
                unreachable!("ops/scan.rs records masked carries only")
            }
            (false, false, false) => {
                let n = g.numel(c.value.0);
                let buffers = vec![node(c.next), node(c.value)];
                let label = format!("scan carry [{n}]");
                out.push(copy_dispatch(
                    n,
                    buffers,
                    Role::Compute(NodeId::at(i)),
                    label,
                ));
                None
            }
            (_, false, true) => None,
        };
        if let Some(kind) = kind {
            let buffers = match kind {
                ScanIo::Commit => vec![
                    node(spec.lengths),
                    node(c.next),
                    node(c.value),
                    Buf::Node(i),
                ],
                ScanIo::Hold => vec![node(spec.lengths), node(c.next), node(c.value)],
                _ => vec![node(spec.lengths), node(c.next), Buf::Node(i)],
            };
            per_step.push(out.len());
            out.push(dispatch(kind, io(c.value, width, offset), buffers, c.value));
        }
        if c.recorded {
            offset += per_sample(c.value);
        }
    }
    for &e in &spec.emits {
        per_step.push(out.len());
        let buffers = vec![node(spec.lengths), node(e), Buf::Node(i)];
        out.push(dispatch(ScanIo::Emit, io(e, width, offset), buffers, e));
        offset += per_sample(e);
    }
    debug_assert_eq!(offset, width, "the scan records its whole width");
    loops.push(Loop {
        first,
        len: out.len() - first,
        times: steps,
        per_step,
    });
    Ok(())
}
