//! Fusions: passes that decide which nodes run inside another node's dispatch. Each pass is
//! a function of the graph, the liveness and the earlier passes' decisions; it returns its
//! own decisions and records in the liveness the reads it moves (a folded node's operands
//! are read where the node that absorbs it runs).
//!
//! In order: [`gather`] (im2col read through the window), [`alpha`] (scalings folded into
//! products), [`transposed`] (stride-1 convolution input gradients as one product),
//! [`epilogue`] (bias, activation or activation gradient in the producer's epilogue),
//! [`loss_metric`] (cross-entropy and classification error in one pass).

pub(crate) mod alpha;
pub(crate) mod epilogue;
pub(crate) mod gather;
pub(crate) mod loss_metric;
pub(crate) mod transposed;

use std::collections::{HashMap, HashSet};

use super::liveness::{Liveness, PlanGraph};
use crate::graph::{NodeId, Op, Window};

use crate::kernels::Epilogue;

/// Every fusion decided for one plan.
#[derive(Debug, Default)]
pub(crate) struct Fusions {
    /// im2col nodes never stored: node → (image, window).
    pub gathered: HashMap<usize, (NodeId, Window)>,
    /// Scalings folded into products: node → (operand, factor).
    pub scaled: HashMap<usize, (NodeId, f32)>,
    /// col2im nodes computed as one product: col2im → (the product it absorbs, the
    /// transposed window).
    pub transposed: HashMap<usize, (usize, Window)>,
    /// Nodes computed in a producer's epilogue: node → (producer, epilogue).
    pub epilogue: HashMap<usize, (usize, Epilogue)>,
    /// Cross-entropy nodes that also write a classification error: loss → error.
    pub sibling: HashMap<usize, usize>,
}

impl Fusions {
    /// Runs every fusion pass in order.
    pub fn find(g: &PlanGraph, live: &mut Liveness) -> Fusions {
        let mut f = Fusions {
            gathered: gather::find(g, live),
            ..Fusions::default()
        };
        f.scaled = alpha::find(g, live, &f);
        f.transposed = transposed::find(g, live, &f);
        f.epilogue = epilogue::find(g, live, &f);
        f.sibling = loss_metric::find(g, live);
        f.outside_scans(g, live);
        f
    }

    /// Drops every fusion that touches a node computed in a scan's loop or a node that a
    /// scan reads (its body's reads count as the scan's): a loop body runs its nodes' own
    /// kernels, and a scan reads whole buffers (plan/scan.rs).
    fn outside_scans(&mut self, g: &PlanGraph, live: &Liveness) {
        let touches = |i: usize| {
            live.in_scan(i)
                || live.reads_at[live.alias_root[i]]
                    .iter()
                    .any(|&r| matches!(g.op(r), Op::Scan(_)))
        };
        self.gathered
            .retain(|&k, v| !touches(k) && !touches(v.0 .0));
        self.scaled.retain(|&k, v| !touches(k) && !touches(v.0 .0));
        self.transposed.retain(|&k, v| !touches(k) && !touches(v.0));
        self.epilogue.retain(|&k, v| !touches(k) && !touches(v.0));
        self.sibling.retain(|&k, &mut v| !touches(k) && !touches(v));
    }

    /// What a product binds for operand `j`: a gathered im2col's image, else `j`.
    pub fn bound(&self, j: NodeId) -> NodeId {
        self.gathered.get(&j.0).map_or(j, |g| g.0)
    }

    /// The factor a folded scaling of operand `j` contributes (1 without one).
    pub fn alpha_of(&self, live: &Liveness, j: NodeId) -> f32 {
        let root = live.alias_root[self.bound(j).0];
        self.scaled.get(&root).map_or(1.0, |s| s.1)
    }

    /// Where operand `j`'s values come from: gathered im2cols read their images, and folded
    /// scalings their operands.
    pub fn source_of(&self, live: &Liveness, j: NodeId) -> NodeId {
        let j = self.bound(j);
        self.scaled.get(&live.alias_root[j.0]).map_or(j, |s| s.0)
    }

    /// What node `i` reads, operands traced to their sources.
    pub fn reads_through(&self, g: &PlanGraph, live: &Liveness, i: usize) -> Vec<NodeId> {
        g.reads(i)
            .into_iter()
            .map(|j| self.source_of(live, j))
            .collect()
    }

    /// What node `i` reads, counting the reads of a product folded into it as its own.
    pub fn reads_folded(&self, g: &PlanGraph, live: &Liveness, i: usize) -> Vec<NodeId> {
        match self.transposed.get(&i) {
            Some(&(m, _)) => self.reads_through(g, live, m),
            None => self.reads_through(g, live, i),
        }
    }

    /// Producers absorbed into another node's dispatch.
    pub fn absorbed(&self) -> HashSet<usize> {
        self.epilogue
            .values()
            .map(|e| e.0)
            .chain(self.transposed.values().map(|t| t.0))
            .collect()
    }

    /// Whether node `i` has no dispatch of its own.
    pub fn skipped(&self, absorbed: &HashSet<usize>, i: usize) -> bool {
        absorbed.contains(&i)
            || self.gathered.contains_key(&i)
            || self.scaled.contains_key(&i)
            || self.sibling.values().any(|&j| j == i)
    }
}

#[cfg(test)]
pub(crate) mod test_graphs {
    //! Small graphs for the passes' GPU-free tests.
    use super::super::liveness::{Liveness, PlanGraph};
    use crate::graph::{Node, NodeId};

    /// The liveness of `nodes` for `targets`.
    pub fn live<'a>(nodes: &'a [Node], targets: &[NodeId]) -> (PlanGraph<'a>, Liveness) {
        let pg = PlanGraph::new(nodes, crate::shape::Sizes::batch(2), true);
        let live = Liveness::new(&pg, targets);
        (pg, live)
    }
}
