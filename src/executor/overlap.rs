//! Reading outputs back in groups, each as soon as it is final, while the device runs the
//! rest of the plan: data-parallel training all-reduces the last layers' gradients while the
//! backward pass of the first layers still runs.

use super::{Executor, Feed, Pass};
use crate::graph::NodeId;
use crate::plan;
use crate::Result;

impl Executor {
    /// Runs `outputs` in training mode without updates (like [`Executor::eval_training`]) and
    /// reads them back in `groups` (indices into `outputs`, in the order they are wanted).
    ///
    /// The plan's dispatches are submitted in segments: each ends where its group's outputs
    /// are final (`Plan::ready`) and copies them out. Then each group is mapped in turn and
    /// handed to `on_group` (its index and its outputs' values) while the device works on
    /// the later segments.
    pub(crate) fn run_overlapped(
        &mut self,
        outputs: &[NodeId],
        feed: &Feed,
        groups: &[Vec<usize>],
        on_group: &mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>,
    ) -> Result<()> {
        let (key, t_encode) = self.begin_call(outputs, feed, Pass::TrainForward, false)?;
        let plan = self.plans.touch(&key).expect("planned");
        if plan.group_staging.as_ref().is_none_or(|(g, _)| g != groups) {
            let mut buffers = Vec::with_capacity(groups.len());
            for g in groups {
                let floats = g.iter().map(|&o| plan.outputs[o].2).sum();
                buffers.push(plan::readback_buffer(&self.ctx, floats)?);
            }
            plan.group_staging = Some((groups.to_vec(), buffers));
        }
        let plan = self.plans.get(&key).expect("planned");
        let (_, staging) = plan.group_staging.as_ref().expect("made above");
        let mut start = 0;
        let mut submissions = Vec::with_capacity(groups.len());
        for (g, buffer) in groups.iter().zip(staging) {
            let end = g.iter().map(|&o| plan.ready[o]).fold(start, usize::max);
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            plan::record_range(&plan.steps, &plan.loops, start..end, &mut enc);
            let mut off = 0u64;
            for &o in g {
                let (from, at, len) = &plan.outputs[o];
                enc.copy_buffer_to_buffer(from, *at, buffer, off, (*len * 4) as u64);
                off += (*len * 4) as u64;
            }
            submissions.push(self.ctx.submit(enc.finish()));
            start = end;
        }
        if start < plan.steps.len() {
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            plan::record_range(&plan.steps, &plan.loops, start..plan.steps.len(), &mut enc);
            self.ctx.submit(enc.finish());
        }
        let encoded = t_encode.elapsed();
        for (k, ((g, buffer), index)) in groups.iter().zip(staging).zip(submissions).enumerate() {
            let lens: Vec<usize> = g.iter().map(|&o| plan.outputs[o].2).collect();
            let values = self.read_staging(buffer, &lens, Some(index))?;
            on_group(k, values)?;
        }
        self.last_encode = encoded;
        self.check_numerics()
    }
}
