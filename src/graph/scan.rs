//! What a scan over a sequence axis runs: [`ScanSpec`] and its carries ([`ScanCarry`]),
//! held by [`Op::Scan`](super::Op::Scan). `ops/scan.rs` builds them; `plan/scan.rs` lowers
//! them.

use super::NodeId;

/// What an [`Op::Scan`](super::Op::Scan) runs (`ops/scan.rs` builds it; `plan/scan.rs` lowers
/// it).
#[derive(Clone, Debug, PartialEq)]
pub struct ScanSpec {
    /// Sequences read one step at a time: `(sequence, the body's StepValue for its step)`.
    pub steps: Vec<(NodeId, NodeId)>,
    /// Values carried from step to step.
    pub carries: Vec<ScanCarry>,
    /// Per-step values recorded after the recorded carries but not carried.
    pub emits: Vec<NodeId>,
    /// Nodes from outside the body that the body reads (parameters, per-sequence values).
    pub captured: Vec<NodeId>,
    /// The nodes the body computes, in graph order.
    pub body: Vec<NodeId>,
    /// The sequence axis's lengths.
    pub lengths: NodeId,
    /// Each sequence from its last step down (CNTK's `go_backwards`).
    pub backwards: bool,
    /// Iterations in reverse order (backpropagation through time): padded steps first.
    pub reverse: bool,
}

/// One carried value of an [`Op::Scan`](super::Op::Scan).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanCarry {
    /// Its value before the first step.
    pub init: NodeId,
    /// The body's StepValue that holds it during a step.
    pub value: NodeId,
    /// The body's node computing its next value.
    pub next: NodeId,
    /// A sequence whose steps are over keeps its value (a recurrence's state); unmasked
    /// carries take every step's next value (sums of gradients).
    pub masked: bool,
    /// Its value after each step is written to the scan's output.
    pub recorded: bool,
}

impl ScanSpec {
    /// Every node the scan reads: the sequences, the initial values, the lengths, the
    /// captured nodes, the body's StepValues and the body's nodes (so that liveness keeps
    /// them all until the scan has run).
    pub fn reads(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.steps.iter().map(|s| s.0).collect();
        v.extend(self.carries.iter().map(|c| c.init));
        v.push(self.lengths);
        v.extend(&self.captured);
        v.extend(self.steps.iter().map(|s| s.1));
        v.extend(self.carries.iter().map(|c| c.value));
        v.extend(&self.body);
        v.extend(self.carries.iter().map(|c| c.next));
        v.extend(&self.emits);
        v
    }

    /// The StepValues the scan binds.
    pub fn values(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.steps.iter().map(|s| s.1).collect();
        v.extend(self.carries.iter().map(|c| c.value));
        v
    }
}
