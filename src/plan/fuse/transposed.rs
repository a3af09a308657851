//! The col2im of a product dYᵀ·W, the input gradient of a stride-1 convolution, becomes one
//! product when nothing else reads the first: a convolution of dY with the flipped filters,
//! read through the transposed window, so neither result is stored.

use std::collections::HashMap;

use super::super::liveness::{Liveness, PlanGraph};
use super::Fusions;
use crate::graph::{Op, Window};

/// The col2im nodes computed as one product: col2im → (product, transposed window).
pub(crate) fn find(
    g: &PlanGraph,
    live: &mut Liveness,
    f: &Fusions,
) -> HashMap<usize, (usize, Window)> {
    let mut transposed = HashMap::new();
    let candidates: Vec<usize> = live.unplaced().collect();
    for i in candidates {
        let Op::Col2Im { x, win } = *g.op(i) else {
            continue;
        };
        let m = x.0;
        let Op::Matmul {
            a,
            b,
            ta: true,
            tb: false,
        } = *g.op(m)
        else {
            continue;
        };
        let (span_h, span_w) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
        if live.pinned[m]
            || live.reads_at[m] != [i]
            || (win.sh, win.sw) != (1, 1)
            || win.ph > span_h
            || win.pw > span_w
            || g.dims[a.0].len() != 3
            || g.dims[b.0].len() != 2
        {
            continue;
        }
        let t = Window {
            c: g.dims[b.0][0],
            h: win.oh,
            w: win.ow,
            ph: span_h - win.ph,
            pw: span_w - win.pw,
            oh: win.h,
            ow: win.w,
            ..win
        };
        transposed.insert(i, (m, t));
        for j in f.reads_through(g, live, m) {
            live.add_read(j, i);
        }
    }
    transposed
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::live;
    use super::super::Fusions;
    use super::*;
    use crate::{Graph, Init, NodeId, Padding, WindowOpts};

    /// The input gradient of a convolution with this stride.
    fn input_gradient(stride: usize) -> (Vec<crate::graph::Node>, NodeId) {
        let g = Graph::new();
        let x = g.input("x", &[2, 6, 5]).unwrap();
        let w = g.parameter("w", &[3, 2, 3, 3], Init::Zeros).unwrap();
        let opts = WindowOpts::default()
            .stride(stride)
            .padding(Padding::Explicit(1, 1));
        let y = g.conv2d(x, w, None, opts).unwrap();
        let loss = g.reduce_sum(g.mul(y, y).unwrap(), &[]).unwrap();
        let dx = g.grad(loss, &[x]).unwrap()[0];
        let nodes = g.nodes().clone();
        (nodes, dx)
    }

    #[test]
    fn a_stride_1_input_gradient_is_one_product() {
        let (nodes, dx) = input_gradient(1);
        let (pg, mut l) = live(&nodes, &[dx]);
        let found = find(&pg, &mut l, &Fusions::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let (&i, &(m, t)) = found.iter().next().unwrap();
        assert!(matches!(nodes[i].op, Op::Col2Im { .. }));
        assert!(matches!(nodes[m].op, Op::Matmul { ta: true, .. }));
        // The transposed window runs over the output gradient, back to the image's size.
        assert_eq!((t.c, t.oh, t.ow), (3, 6, 5));
    }

    #[test]
    fn a_strided_input_gradient_keeps_its_col2im() {
        let (nodes, dx) = input_gradient(2);
        let (pg, mut l) = live(&nodes, &[dx]);
        assert!(find(&pg, &mut l, &Fusions::default()).is_empty());
    }
}
