//! The executor's plans, kept with a bound: when more than the limit are cached, the least
//! recently used is dropped with its buffers, so training at many batch sizes (or
//! evaluating many shapes) does not grow memory without end.

use std::collections::HashMap;

use super::PlanKey;
use crate::plan::Plan;

/// Plans kept by default: enough for a training and an evaluation plan at a few batch and
/// sequence sizes.
pub const DEFAULT_PLAN_LIMIT: usize = 16;

/// Plans by key, least recently used evicted beyond `limit`.
pub(super) struct PlanCache {
    plans: HashMap<PlanKey, (Plan, u64)>,
    tick: u64,
    limit: usize,
}

impl PlanCache {
    pub(super) fn new() -> PlanCache {
        PlanCache {
            plans: HashMap::new(),
            tick: 0,
            limit: DEFAULT_PLAN_LIMIT,
        }
    }

    /// Sets the bound (at least 1) and evicts down to it.
    pub(super) fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
        self.evict(None);
    }

    pub(super) fn contains_key(&self, key: &PlanKey) -> bool {
        self.plans.contains_key(key)
    }

    /// The plan under `key`, marked as used now.
    pub(super) fn touch(&mut self, key: &PlanKey) -> Option<&mut Plan> {
        self.tick += 1;
        let tick = self.tick;
        self.plans.get_mut(key).map(|(p, used)| {
            *used = tick;
            p
        })
    }

    pub(super) fn get(&self, key: &PlanKey) -> Option<&Plan> {
        self.plans.get(key).map(|e| &e.0)
    }

    /// Caches `plan`, then evicts the least recently used others beyond the limit.
    pub(super) fn insert(&mut self, key: PlanKey, plan: Plan) {
        self.tick += 1;
        self.plans.insert(key.clone(), (plan, self.tick));
        self.evict(Some(&key));
    }

    fn evict(&mut self, keep: Option<&PlanKey>) {
        while self.plans.len() > self.limit {
            let oldest = self
                .plans
                .iter()
                .filter(|(k, _)| Some(*k) != keep)
                .min_by_key(|(_, e)| e.1)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.plans.remove(&k),
                None => break,
            };
        }
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&PlanKey) -> bool) {
        self.plans.retain(|k, _| keep(k));
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values().map(|e| &e.0)
    }

    pub(super) fn len(&self) -> usize {
        self.plans.len()
    }
}
