//! Which parameter gradients are computed straight into the learner's gradient arena.
//!
//! A gradient feeding an update is written in place in the arena where its value is a node
//! of its own; the others are copied there after the backward pass. A dispatch may not read
//! and write the same buffer, so no node written into the arena reads another such node, and
//! a node shared by several gradients stays out of it.

use std::collections::HashMap;

use super::liveness::{Liveness, PlanGraph};
use crate::graph::NodeId;

/// Where one parameter's gradient goes: update `update`'s arena at byte `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArenaPlace {
    pub update: usize,
    pub offset: u64,
}

/// The pass's decisions.
#[derive(Debug, Default)]
pub(crate) struct GradArena {
    /// Alias roots computed in the arena, and where.
    pub claims: HashMap<usize, ArenaPlace>,
    /// Gradients copied into the arena after the backward pass.
    pub copies: Vec<(NodeId, ArenaPlace)>,
}

/// Decides for `members` (each update's gradient nodes and byte offsets) which are computed
/// in the arena, and marks those placed.
pub(crate) fn claim(
    g: &PlanGraph,
    live: &mut Liveness,
    members: &[Vec<(NodeId, u64)>],
) -> GradArena {
    let root = |x: NodeId| live.alias_root[x.0];
    let mut uses: HashMap<usize, usize> = HashMap::new();
    for u in members {
        for &(x, _) in u {
            *uses.entry(root(x)).or_default() += 1;
        }
    }
    let mut claims: HashMap<usize, ArenaPlace> = HashMap::new();
    for (update, u) in members.iter().enumerate() {
        for &(x, offset) in u {
            let r = root(x);
            // A scan's carry (a gradient summed over the steps) stays in its own buffer.
            let carry = matches!(g.op(r), crate::graph::Op::StepValue);
            if !live.placed[r] && uses[&r] == 1 && !carry {
                claims.insert(r, ArenaPlace { update, offset });
            }
        }
    }
    // Until no claimed node reads another.
    loop {
        let reads_claimed: Vec<usize> = claims
            .keys()
            .copied()
            .filter(|&r| g.reads(r).iter().any(|&j| claims.contains_key(&root(j))))
            .collect();
        if reads_claimed.is_empty() {
            break;
        }
        for r in reads_claimed {
            claims.remove(&r);
        }
    }
    let mut copies = Vec::new();
    for (update, u) in members.iter().enumerate() {
        for &(x, offset) in u {
            let place = ArenaPlace { update, offset };
            if claims.get(&root(x)) != Some(&place) {
                copies.push((x, place));
            }
        }
    }
    for &r in claims.keys() {
        live.placed[r] = true;
    }
    GradArena { claims, copies }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Graph, Init};

    #[test]
    fn a_gradient_of_its_own_is_claimed_and_a_shared_one_copied() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let w = g.parameter("w", &[3, 2], Init::Zeros).unwrap();
        let v = g.parameter("v", &[3, 2], Init::Zeros).unwrap();
        let y = g.matmul(x, g.add(w, v).unwrap()).unwrap();
        let loss = g.reduce_sum(y, &[]).unwrap();
        let gs = g.grad(loss, &[w, v]).unwrap();
        let (nodes, grads) = (g.nodes().clone(), gs.clone());
        let pg = PlanGraph::new(&nodes, crate::shape::Sizes::batch(4), true);
        let mut live = Liveness::new(&pg, &grads);
        // w and v share one gradient node: it is used twice, so both are copied.
        assert_eq!(gs[0], gs[1]);
        let members = vec![vec![(gs[0], 0), (gs[1], 256)]];
        let a = claim(&pg, &mut live, &members);
        assert!(a.claims.is_empty(), "{a:?}");
        assert_eq!(a.copies.len(), 2);

        let mut live = Liveness::new(&pg, &grads);
        let a = claim(&pg, &mut live, &[vec![(gs[0], 0)]]);
        assert_eq!(a.claims.len(), 1, "{a:?}");
        assert!(a.copies.is_empty());
        assert!(live.placed[live.alias_root[gs[0].0]]);
    }
}
