//! Cross-entropy and classification error of the same scores and targets (a trainer's loss
//! and metric) are one pass: the loss's dispatch writes both, and the error's slot is taken
//! with the loss's. Only for an error nothing in the plan reads.

use std::collections::HashMap;

use super::super::liveness::{Liveness, PlanGraph};
use crate::graph::Op;

/// The losses that also write an error: cross-entropy node → classification-error node.
pub(crate) fn find(g: &PlanGraph, live: &Liveness) -> HashMap<usize, usize> {
    let mut sibling = HashMap::new();
    for i in live.unplaced() {
        let Op::CrossEntropy { z, t } = *g.op(i) else {
            continue;
        };
        let error = live.unplaced().find(|&j| {
            live.reads_at[j].is_empty()
                && matches!(*g.op(j), Op::ClassError { z: z2, t: t2 } if (z2, t2) == (z, t))
        });
        if let Some(j) = error {
            sibling.insert(i, j);
        }
    }
    sibling
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::live;
    use super::*;
    use crate::Graph;

    #[test]
    fn loss_and_error_of_the_same_scores_share_a_pass() {
        let g = Graph::new();
        let z = g.input("z", &[4]).unwrap();
        let t = g.input("t", &[4]).unwrap();
        let ce = g.cross_entropy_with_softmax(z, t).unwrap();
        let err = g.classification_error(z, t).unwrap();
        let nodes = g.nodes().clone();
        let (pg, l) = live(&nodes, &[ce, err]);
        assert_eq!(find(&pg, &l).get(&ce.0), Some(&err.0));
    }

    #[test]
    fn an_error_of_other_targets_or_read_by_a_node_runs_alone() {
        let g = Graph::new();
        let z = g.input("z", &[4]).unwrap();
        let t = g.input("t", &[4]).unwrap();
        let u = g.input("u", &[4]).unwrap();
        let ce = g.cross_entropy_with_softmax(z, t).unwrap();
        let other = g.classification_error(z, u).unwrap();
        let err = g.classification_error(z, t).unwrap();
        let mean = g.reduce_mean(err, &[]).unwrap();
        let nodes = g.nodes().clone();
        let (pg, l) = live(&nodes, &[ce, other, mean]);
        assert!(find(&pg, &l).is_empty());
    }
}
