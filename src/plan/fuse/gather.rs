//! An im2col read only as the B operand of matrix products is never stored: the products
//! read the image through the window instead (implicit GEMM), and the image stays live until
//! they have run.

use std::collections::HashMap;

use super::super::liveness::{Liveness, PlanGraph};
use crate::graph::{NodeId, Op, Window};

/// The im2col nodes read through the window: node → (image, window).
pub(crate) fn find(g: &PlanGraph, live: &mut Liveness) -> HashMap<usize, (NodeId, Window)> {
    let mut gathered = HashMap::new();
    let candidates: Vec<usize> = live.unplaced().filter(|&i| !live.pinned[i]).collect();
    for i in candidates {
        let Op::Im2Col { x, win } = *g.op(i) else {
            continue;
        };
        let as_b = |r: usize| match *g.op(r) {
            Op::Matmul { a, b, .. } => b.0 == i && a.0 != i,
            // Not pᵀ·q, which reads the batch as one long matrix.
            Op::MatmulSumBatch { p, q, tp, tq } => q.0 == i && p.0 != i && (!tp || tq),
            _ => false,
        };
        if !live.reads_at[i].is_empty() && live.reads_at[i].iter().all(|&r| as_b(r)) {
            gathered.insert(i, (x, win));
            for r in live.reads_at[i].clone() {
                live.add_read(x, r);
            }
        }
    }
    gathered
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::live;
    use super::*;
    use crate::{Graph, Init, WindowOpts};

    #[test]
    fn a_convolution_reads_its_image_through_the_window() {
        let g = Graph::new();
        let x = g.input("x", &[2, 5, 5]).unwrap();
        let w = g.parameter("w", &[3, 2, 3, 3], Init::Zeros).unwrap();
        let y = g.conv2d(x, w, None, WindowOpts::default()).unwrap();
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[y]);
        let found = find(&pg, &mut l);
        assert_eq!(found.len(), 1, "{found:?}");
        let (&i, &(image, _)) = found.iter().next().unwrap();
        assert!(matches!(nodes[i].op, Op::Im2Col { .. }));
        assert_eq!(image, x);
        // The product now reads the image.
        assert!(!l.reads_at[x.0].is_empty());
    }

    #[test]
    fn an_im2col_read_by_anything_but_a_product_is_stored() {
        let g = Graph::new();
        let x = g.input("x", &[2, 5, 5]).unwrap();
        let cols = g.im2col(x, (3, 3), WindowOpts::default()).unwrap();
        let s = g.reduce_sum(cols, &[]).unwrap();
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[s]);
        assert!(find(&pg, &mut l).is_empty());
        // Nor when it is itself an output.
        let (pg, mut l) = live(&nodes, &[cols]);
        assert!(find(&pg, &mut l).is_empty());
    }
}
