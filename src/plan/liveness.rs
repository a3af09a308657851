//! Liveness: which nodes a plan needs, which share a buffer (reshapes, mode switches),
//! which nodes read each value, and which values must survive the whole step.

use crate::dtype::DType;
use crate::graph::{Node, NodeId, Op};
use crate::shape::Sizes;

/// The graph as a plan sees it: the nodes, their shapes at the feed's sizes, and the mode.
pub(crate) struct PlanGraph<'a> {
    pub nodes: &'a [Node],
    /// Each node's shape with the batch and sequence axes bound.
    pub dims: Vec<Vec<usize>>,
    /// What the symbolic axes are bound to.
    pub sizes: Sizes,
    /// Training steps run the training branch of mode switches.
    pub training: bool,
}

impl<'a> PlanGraph<'a> {
    /// The graph `nodes` at the feed's sizes.
    pub fn new(nodes: &'a [Node], sizes: Sizes, training: bool) -> PlanGraph<'a> {
        let dims = nodes.iter().map(|n| n.shape.dims(sizes)).collect();
        PlanGraph {
            nodes,
            dims,
            sizes,
            training,
        }
    }

    /// Elements of node `i`.
    pub fn numel(&self, i: usize) -> usize {
        self.dims[i].iter().product()
    }

    /// The element type of node `i`.
    pub fn dtype(&self, i: usize) -> DType {
        self.nodes[i].dtype
    }

    /// Bytes of node `i`'s value.
    pub fn bytes(&self, i: usize) -> usize {
        self.numel(i) * self.dtype(i).size()
    }

    /// The op of node `i`.
    pub fn op(&self, i: usize) -> &Op {
        &self.nodes[i].op
    }

    /// What node `i` reads in this mode.
    pub fn reads(&self, i: usize) -> Vec<NodeId> {
        reads(&self.nodes[i].op, self.training)
    }

    /// The node whose buffer node `i` shares (a reshape's operand, a mode switch's active
    /// branch), if any.
    pub fn alias_of(&self, i: usize) -> Option<NodeId> {
        match self.nodes[i].op {
            Op::Reshape { x } => Some(x),
            Op::Mode { train, eval } => Some(if self.training { train } else { eval }),
            Op::ScanFinal { scan, carry } => match &self.nodes[scan.0].op {
                Op::Scan(spec) => Some(spec.carries[carry].value),
                _ => unreachable!("a scan's final value reads a scan"),
            },
            _ => None,
        }
    }
}

/// The inputs a node reads in this mode: a [`Op::Mode`] node reads only its active branch.
pub(crate) fn reads(op: &Op, training: bool) -> Vec<NodeId> {
    match *op {
        Op::Mode { train, eval } => vec![if training { train } else { eval }],
        _ => op.inputs(),
    }
}

/// For each node of a needed scan's body (or step value), the last such scan.
fn scan_bodies(g: &PlanGraph, need: &[bool]) -> Vec<Option<usize>> {
    let mut scan_of = vec![None; g.nodes.len()];
    for i in (0..g.nodes.len()).filter(|&i| need[i]) {
        if let Op::Scan(spec) = g.op(i) {
            for j in spec.body.iter().chain(&spec.values()) {
                scan_of[j.0] = Some(i);
            }
        }
    }
    scan_of
}

/// The nodes needed to compute `targets`, as a mask over the graph.
pub(crate) fn needed(nodes: &[Node], targets: &[NodeId], training: bool) -> Vec<bool> {
    let mut need = vec![false; nodes.len()];
    for t in targets {
        need[t.0] = true;
    }
    for i in (0..nodes.len()).rev() {
        if need[i] {
            for j in reads(&nodes[i].op, training) {
                need[j.0] = true;
            }
        }
    }
    need
}

/// Who needs and reads what. Fusion passes move reads (a folded node's operands are read
/// where the node that absorbs it runs), so `reads_at` grows as passes decide.
pub(crate) struct Liveness {
    /// Nodes the plan computes or binds.
    pub need: Vec<bool>,
    /// The node whose buffer each node shares (itself for most).
    pub alias_root: Vec<usize>,
    /// The nodes that read each alias root.
    pub reads_at: Vec<Vec<usize>>,
    /// Alias roots that must survive the step (outputs, gradients for updates).
    pub pinned: Vec<bool>,
    /// Nodes whose buffer is fixed before slot allocation (leaves, gradients computed in
    /// the arena); fusions leave them alone.
    pub placed: Vec<bool>,
    /// For the nodes of a scan's body and its step values, the last needed scan that runs
    /// them (plan/scan.rs): they are computed in its loop, and what they read is read
    /// until that scan has run.
    pub scan_of: Vec<Option<usize>>,
}

impl Liveness {
    /// The liveness of the nodes needed for `targets`; leaves are placed.
    pub fn new(g: &PlanGraph, targets: &[NodeId]) -> Liveness {
        let n = g.nodes.len();
        let need = needed(g.nodes, targets, g.training);
        let mut alias_root: Vec<usize> = (0..n).collect();
        for i in (0..n).filter(|&i| need[i]) {
            if let Some(x) = g.alias_of(i) {
                alias_root[i] = alias_root[x.0];
            }
        }
        let scan_of = scan_bodies(g, &need);
        let mut reads_at: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in (0..n).filter(|&i| need[i]) {
            for j in g.reads(i) {
                reads_at[alias_root[j.0]].push(scan_of[i].unwrap_or(i));
            }
        }
        let mut pinned = vec![false; n];
        for t in targets {
            pinned[alias_root[t.0]] = true;
        }
        let placed = (0..n)
            .map(|i| {
                need[i]
                    && matches!(
                        g.op(i),
                        Op::Input { .. } | Op::Param { .. } | Op::Const { .. }
                    )
            })
            .collect();
        Liveness {
            need,
            alias_root,
            reads_at,
            pinned,
            placed,
            scan_of,
        }
    }

    /// Needed nodes, in graph order.
    pub fn needed(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.need.len()).filter(|&i| self.need[i])
    }

    /// Needed nodes whose buffer is not fixed yet: the candidates of fusions.
    pub fn unplaced(&self) -> impl Iterator<Item = usize> + '_ {
        self.needed().filter(|&i| !self.placed[i])
    }

    /// Records that `reader` reads node `j` (through its alias root).
    pub fn add_read(&mut self, j: NodeId, reader: usize) {
        let root = self.alias_root[j.0];
        self.reads_at[root].push(self.scan_of[reader].unwrap_or(reader));
    }

    /// Whether node `i` is computed in a scan's loop (a body node or a step value).
    pub fn in_scan(&self, i: usize) -> bool {
        self.scan_of[i].is_some()
    }

    /// The last node that reads alias root `root` (0 when none does).
    pub fn last_read(&self, root: usize) -> usize {
        self.reads_at[root].iter().copied().max().unwrap_or(0)
    }
}
