//! Looking into plans: their summaries, per-dispatch profiles, sizes.

use super::{Executor, Feed, Pass};
use crate::graph::NodeId;
use crate::plan::summary::PlanSummary;
use crate::Result;

impl Executor {
    /// Runs the plan for `outputs` (in training mode when `training`, with the learner's
    /// updates) one dispatch at a time, each repeated `PROFILE_REPEATS` times in one submit,
    /// and returns each dispatch's label and mean seconds (a loop body's dispatch: times
    /// the steps it runs, with its first step's parameters). For finding hot spots; far slower
    /// than a normal step, and repeated updates change the parameters.
    pub fn profile(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        training: bool,
    ) -> Result<Vec<(String, f64)>> {
        let pass = if training { Pass::Train } else { Pass::Eval };
        self.run(outputs, feed, pass, false)?; // builds the plan
        self.ctx.wait()?;
        let key = self.ensure_plan(outputs, feed, pass, false)?;
        let plan = self.plans.get(&key).expect("planned");
        let mut out = Vec::with_capacity(plan.steps.len());
        for (i, s) in plan.steps.iter().enumerate() {
            // A loop body's dispatch runs once per step: its time per call is that many.
            let times = plan
                .loops
                .iter()
                .find(|l| (l.first..l.first + l.len).contains(&i))
                .map_or(1, |l| l.times);
            let t0 = std::time::Instant::now();
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            for c in &s.copies {
                c.record(&mut enc);
            }
            {
                let mut p = enc.begin_compute_pass(&Default::default());
                p.set_pipeline(&s.pipeline);
                p.set_bind_group(0, &s.bind, &[]);
                for _ in 0..PROFILE_REPEATS {
                    p.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
                }
            }
            self.ctx.submit(enc.finish());
            self.ctx.wait()?;
            let secs = t0.elapsed().as_secs_f64() / PROFILE_REPEATS as f64;
            let label = match times {
                1 => s.label.clone(),
                n => format!("{} (×{n} steps)", s.label),
            };
            out.push((label, secs * times as f64));
        }
        Ok(out)
    }

    /// The plan for `outputs` (in training mode when `training`, with the learner's
    /// updates) described as data: each dispatch's kernel, what was fused into it and what
    /// it binds. Builds the plan if needed; runs nothing.
    pub fn plan_summary(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        training: bool,
    ) -> Result<PlanSummary> {
        let pass = if training { Pass::Train } else { Pass::Eval };
        let key = self.ensure_plan(outputs, feed, pass, false)?;
        Ok(self.plans.get(&key).expect("planned").summary.clone())
    }

    /// Bytes of intermediate buffers of the largest plan built so far (parameters and
    /// inputs not counted).
    pub fn peak_scratch_bytes(&self) -> u64 {
        self.plans
            .values()
            .map(|p| p.scratch_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Number of dispatches per call of the largest plan built so far.
    pub fn max_dispatches(&self) -> usize {
        self.plans
            .values()
            .map(|p| p.steps.len())
            .max()
            .unwrap_or(0)
    }
}

/// How often `Executor::profile` repeats each dispatch to time it.
const PROFILE_REPEATS: u32 = 20;
