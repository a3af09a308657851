//! Slot allocation: every value without a fixed buffer gets an intermediate buffer (a
//! slot), reused once its last reader has run. Aliases share their root's buffer, folded
//! scalings their operand's.

use super::fuse::Fusions;
use super::liveness::{Liveness, PlanGraph};
use super::Storage;

/// Fills in `storage` for every needed node and returns each slot's size in bytes.
pub(crate) fn assign(
    g: &PlanGraph,
    live: &Liveness,
    f: &Fusions,
    storage: &mut [Option<Storage>],
) -> Vec<usize> {
    let absorbed = f.absorbed();
    let mut slot_size: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for i in live.needed() {
        if let Some(x) = g.alias_of(i).or(f.scaled.get(&i).map(|s| s.0)) {
            storage[i] = storage[x.0];
        } else if storage[i].is_none() && !absorbed.contains(&i) && !f.gathered.contains_key(&i) {
            for k in std::iter::once(i).chain(f.sibling.get(&i).copied()) {
                let slot = take_slot(&mut slot_size, &mut free, g.bytes(k));
                storage[k] = Some(Storage::Slot(slot));
            }
        }
        // Release the slots whose last reader is this node.
        let mut released: Vec<usize> = Vec::new();
        let mut read_here = f.reads_folded(g, live, i);
        if let Some(&(m, _)) = f.epilogue.get(&i) {
            read_here.extend(f.reads_folded(g, live, m));
        }
        for j in read_here {
            let root = live.alias_root[j.0];
            if live.last_read(root) == i && !live.pinned[root] {
                if let Some(Storage::Slot(s)) = storage[root] {
                    if !released.contains(&s) {
                        released.push(s);
                    }
                }
            }
        }
        free.extend(released);
    }
    slot_size
}

/// Takes the smallest free slot that fits `n` bytes, else grows the largest free one,
/// else opens a new one.
fn take_slot(slot_size: &mut Vec<usize>, free: &mut Vec<usize>, n: usize) -> usize {
    let pick = free
        .iter()
        .enumerate()
        .filter(|(_, &s)| slot_size[s] >= n)
        .min_by_key(|(_, &s)| slot_size[s])
        .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slot_size[s]))
        .map(|(k, _)| k);
    let slot = match pick {
        Some(k) => free.swap_remove(k),
        None => {
            slot_size.push(0);
            slot_size.len() - 1
        }
    };
    slot_size[slot] = slot_size[slot].max(n);
    slot
}

#[cfg(test)]
mod tests {
    use super::super::fuse::test_graphs::live;
    use super::*;
    use crate::Graph;

    #[test]
    fn a_chain_reuses_slots_once_values_are_dead() {
        let g = Graph::new();
        let x = g.input("x", &[8]).unwrap();
        let mut y = x;
        for _ in 0..6 {
            y = g.tanh(y).unwrap();
        }
        let nodes = g.nodes().clone();
        let (pg, l) = live(&nodes, &[y]);
        let mut storage = vec![None; nodes.len()];
        storage[x.0] = Some(Storage::Input(0));
        let sizes = assign(&pg, &l, &Fusions::default(), &mut storage);
        // Each tanh reads the one before: two slots alternate.
        assert_eq!(sizes, vec![64, 64]);
        assert!(storage.iter().all(|s| s.is_some()));
    }
}
