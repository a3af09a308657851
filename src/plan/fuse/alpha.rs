//! A scaling read only by matrix products (directly, through reshapes or through gathered
//! im2cols) is not a dispatch: the products scale their result (alpha), and the scaling
//! shares its operand's buffer.

use std::collections::HashMap;

use super::super::liveness::{Liveness, PlanGraph};
use super::Fusions;
use crate::graph::{NodeId, Op, UnaryOp};

/// The scalings folded into products: node → (operand, factor).
pub(crate) fn find(
    g: &PlanGraph,
    live: &mut Liveness,
    f: &Fusions,
) -> HashMap<usize, (NodeId, f32)> {
    let mut scaled = HashMap::new();
    let candidates: Vec<usize> = live.unplaced().filter(|&i| !live.pinned[i]).collect();
    for i in candidates {
        let Op::Unary {
            op: UnaryOp::Scale(alpha),
            x,
        } = *g.op(i)
        else {
            continue;
        };
        let product = |r: usize| {
            matches!(g.op(r), Op::Matmul { .. } | Op::MatmulSumBatch { .. })
                || f.gathered.contains_key(&r)
                || g.alias_of(r).is_some()
        };
        if !live.reads_at[i].is_empty() && live.reads_at[i].iter().all(|&r| product(r)) {
            scaled.insert(i, (x, alpha));
            for r in live.reads_at[i].clone() {
                live.add_read(x, r);
            }
        }
    }
    scaled
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::live;
    use super::super::{gather, Fusions};
    use super::*;
    use crate::{Graph, Init};

    #[test]
    fn a_scaled_operand_of_a_product_folds_into_alpha() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let w = g.parameter("w", &[3, 2], Init::Zeros).unwrap();
        let s = g.scale(x, 0.5).unwrap();
        let y = g.matmul(s, w).unwrap();
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[y]);
        let f = Fusions {
            gathered: gather::find(&pg, &mut l),
            ..Fusions::default()
        };
        let found = find(&pg, &mut l, &f);
        assert_eq!(found.get(&s.0), Some(&(x, 0.5)));
        assert!(l.reads_at[x.0].contains(&y.0));
    }

    #[test]
    fn a_scaling_read_elsewhere_is_a_dispatch() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let w = g.parameter("w", &[3, 2], Init::Zeros).unwrap();
        let s = g.scale(x, 0.5).unwrap();
        let y = g.matmul(s, w).unwrap();
        let z = g.add(s, g.scalar(1.0)).unwrap();
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[y, z]);
        assert!(find(&pg, &mut l, &Fusions::default()).is_empty());
    }
}
