//! A bias + activation whose operand is a matrix product read by nothing else becomes that
//! product's epilogue: the product writes the biased, activated value directly. So does an
//! activation's gradient whose incoming gradient is such a product, a col2im or a pooling
//! gradient. The producer's operands are then read at the fused node's position.

use std::collections::HashMap;

use super::super::liveness::{Liveness, PlanGraph};
use super::Fusions;
use crate::graph::{BinaryOp, Op};
use crate::kernels::Epilogue;

/// The nodes computed in their producer's epilogue: node → (producer, epilogue).
pub(crate) fn find(
    g: &PlanGraph,
    live: &mut Liveness,
    f: &Fusions,
) -> HashMap<usize, (usize, Epilogue)> {
    let mut epilogue = HashMap::new();
    let candidates: Vec<usize> = live.unplaced().collect();
    for i in candidates {
        let (x, bias_axis) = match *g.op(i) {
            Op::BiasAct { x, axis, .. } => (x, Some(axis)),
            Op::Binary {
                op: BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad,
                a,
                b,
            } if g.dims[a.0] == g.dims[i] && g.dims[b.0] == g.dims[i] => (b, None),
            _ => continue,
        };
        let m = live.alias_root[x.0];
        // Readers through reshapes of the product are not dispatches.
        let only_reader = live.reads_at[m]
            .iter()
            .all(|&r| r == i || g.alias_of(r).is_some());
        // col2im and pooling gradients take an activation's gradient too.
        let gathers = matches!(g.op(m), Op::Col2Im { .. } | Op::PoolGrad { .. });
        let takes = matches!(g.op(m), Op::Matmul { .. }) || (gathers && bias_axis.is_none());
        if !takes || live.pinned[m] || !only_reader {
            continue;
        }
        let (dm, dx) = (&g.dims[m], &g.dims[i]);
        let (rows, cols) = (dm[dm.len() - 2], dm[dm.len() - 1]);
        let epi = match bias_axis {
            // The gradient's factor applies element by element.
            None => Epilogue::ActivationSlope,
            Some(axis) => {
                let (c, inner) = (dx[axis], dx[axis + 1..].iter().product::<usize>());
                if inner == 1 && c == cols {
                    Epilogue::BiasPerColumn
                } else if inner == cols && c == rows {
                    Epilogue::BiasPerRow
                } else {
                    continue;
                }
            }
        };
        epilogue.insert(i, (m, epi));
        for j in f.reads_folded(g, live, m) {
            live.add_read(j, i);
        }
    }
    epilogue
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::live;
    use super::super::Fusions;
    use super::*;
    use crate::{Graph, Init, UnaryOp};

    #[test]
    fn a_dense_layers_bias_and_activation_fold_into_its_product() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let w = g.parameter("w", &[3, 5], Init::Zeros).unwrap();
        let b = g.parameter("b", &[5], Init::Zeros).unwrap();
        let z = g.matmul(x, w).unwrap();
        let y = g.bias_act(z, b, 1, Some(UnaryOp::Relu)).unwrap();
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[y]);
        let found = find(&pg, &mut l, &Fusions::default());
        assert_eq!(found.get(&y.0), Some(&(z.0, Epilogue::BiasPerColumn)));
    }

    #[test]
    fn an_activation_gradient_folds_into_the_product_computing_its_input() {
        let g = Graph::new();
        let x = g.input("x", &[6]).unwrap();
        let w1 = g.parameter("w1", &[6, 7], Init::Zeros).unwrap();
        let w2 = g.parameter("w2", &[7, 3], Init::Zeros).unwrap();
        let out = g
            .matmul(g.relu(g.matmul(x, w1).unwrap()).unwrap(), w2)
            .unwrap();
        let dw1 = g.grad(g.reduce_sum(out, &[]).unwrap(), &[w1]).unwrap()[0];
        let nodes = g.nodes().clone();
        let (pg, mut l) = live(&nodes, &[dw1]);
        let found = find(&pg, &mut l, &Fusions::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let (&i, &(_, e)) = found.iter().next().unwrap();
        assert!(matches!(
            nodes[i].op,
            Op::Binary {
                op: BinaryOp::ReluGrad,
                ..
            }
        ));
        assert_eq!(e, Epilogue::ActivationSlope);
    }

    #[test]
    fn a_product_read_twice_keeps_its_own_output() {
        let g = Graph::new();
        let x = g.input("x", &[3]).unwrap();
        let w = g.parameter("w", &[3, 5], Init::Zeros).unwrap();
        let b = g.parameter("b", &[5], Init::Zeros).unwrap();
        let z = g.matmul(x, w).unwrap();
        let y = g.bias_act(z, b, 1, None).unwrap();
        let nodes = g.nodes().clone();
        // z is an output too: it must be stored.
        let (pg, mut l) = live(&nodes, &[y, z]);
        assert!(find(&pg, &mut l, &Fusions::default()).is_empty());
    }
}
