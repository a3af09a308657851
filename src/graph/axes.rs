//! Sequence axes. A graph has a first sequence axis (axis 0, lengths input
//! [`SEQUENCE_LENGTHS`]) and may add more, each with its own lengths: a word's letters and its
//! phonemes. An axis is either an input axis, whose lengths and padded steps the feed gives,
//! or derived by a sequence op that selects steps (`sequence_slice`, `sequence_gather`),
//! whose lengths the device computes and whose padded steps are those of its input axis.

use super::{Graph, NodeId, Op, SEQUENCE_LENGTHS};
use crate::error::shape_err;
use crate::shape::{Dim, Shape, MAX_SEQ_AXES};
use crate::{Error, Result};

/// A sequence axis of a graph, as [`Graph::sequence_axis`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SequenceAxis(pub(crate) u8);

impl SequenceAxis {
    /// The axis's number, as [`Dim::Seq`] holds it.
    pub fn index(self) -> u8 {
        self.0
    }
}

/// What a graph knows of one of its sequence axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisInfo {
    /// The `[batch]` node holding each sequence's length: an input for an input axis, a
    /// computed node for a derived one.
    pub lengths: NodeId,
    /// The input axis whose padded steps this axis has (itself for an input axis).
    pub root: u8,
}

impl Graph {
    /// The sequence axes made so far, by number (none before the first sequence input).
    pub fn sequence_axes(&self) -> Vec<AxisInfo> {
        self.axes.borrow().clone()
    }

    /// Creates axis 0 with its lengths input if the graph has no axis yet.
    fn first_axis(&self) {
        if !self.axes.borrow().is_empty() {
            return;
        }
        let lengths = match self.find(SEQUENCE_LENGTHS) {
            Some(id) => id,
            None => self.push(
                Op::Input {
                    name: SEQUENCE_LENGTHS.into(),
                },
                Shape::batched(&[]),
            ),
        };
        self.axes.borrow_mut().push(AxisInfo { lengths, root: 0 });
    }

    /// Creates the first sequence axis with its lengths fed as the input `lengths_name`
    /// (an importer's, whose file names the lengths); an error if the graph has axes or a
    /// node of that name already.
    pub(crate) fn first_axis_named(&self, lengths_name: &str) -> Result<SequenceAxis> {
        if !self.axes.borrow().is_empty() || self.find(lengths_name).is_some() {
            return Err(Error::Invalid(format!(
                "sequence axis: '{lengths_name}' cannot name the first axis's lengths (the graph has axes or a node of that name)"
            )));
        }
        let lengths = self.input(lengths_name, &[])?;
        self.axes.borrow_mut().push(AxisInfo { lengths, root: 0 });
        Ok(SequenceAxis(0))
    }

    /// The graph's first sequence axis, the one [`Graph::input_sequence`] uses.
    pub fn first_sequence_axis(&self) -> SequenceAxis {
        self.first_axis();
        SequenceAxis(0)
    }

    /// A new input sequence axis whose lengths are fed as the input `lengths_name` (`[batch]`,
    /// whole numbers from 1 to the padded steps of the sequence inputs on this axis).
    pub fn sequence_axis(&self, lengths_name: &str) -> Result<SequenceAxis> {
        self.first_axis();
        let k = self.axes.borrow().len();
        if k >= MAX_SEQ_AXES {
            return Err(Error::Invalid(format!(
                "sequence_axis: a graph has at most {MAX_SEQ_AXES} sequence axes"
            )));
        }
        let lengths = self.input(lengths_name, &[])?;
        let root = k as u8;
        self.axes.borrow_mut().push(AxisInfo { lengths, root });
        Ok(SequenceAxis(root))
    }

    /// A derived axis: its lengths computed by `lengths`, its padded steps those of `parent`.
    pub(crate) fn derived_axis(&self, op: &'static str, lengths: NodeId, parent: u8) -> Result<u8> {
        let k = self.axes.borrow().len();
        if k >= MAX_SEQ_AXES {
            return shape_err(
                op,
                format!("a graph has at most {MAX_SEQ_AXES} sequence axes"),
            );
        }
        let root = self.axes.borrow()[parent as usize].root;
        self.axes.borrow_mut().push(AxisInfo { lengths, root });
        Ok(k as u8)
    }

    /// A sequence input on the first axis: `input_sequence("x", &[3])` has shape
    /// `[batch, seq, 3]`, a minibatch of sequences of any lengths padded to the longest (see
    /// [`SequenceBatch`](crate::data::SequenceBatch), which packs them), whose lengths are
    /// fed as [`Graph::sequence_lengths`].
    pub fn input_sequence(&self, name: &str, dims: &[usize]) -> Result<NodeId> {
        let axis = self.first_sequence_axis();
        self.input_sequence_on(axis, name, dims)
    }

    /// A sequence input on `axis` (from [`Graph::sequence_axis`]).
    pub fn input_sequence_on(
        &self,
        axis: SequenceAxis,
        name: &str,
        dims: &[usize],
    ) -> Result<NodeId> {
        let mut shape = vec![Dim::Batch, Dim::Seq(axis.0)];
        shape.extend(dims.iter().map(|&d| Dim::Fixed(d)));
        self.input_with_shape(name, Shape(shape))
    }

    /// The input holding each sequence's length on the first axis (`[batch]`, whole numbers
    /// from 1 to the padded steps).
    pub fn sequence_lengths(&self) -> NodeId {
        self.first_axis();
        self.axes.borrow()[0].lengths
    }

    /// The sequence axis of the sequence tensor `x` (`[batch, seq, ..]`), e.g. to read the
    /// lengths of the derived axis a `sequence_slice` made.
    pub fn sequence_axis_of(&self, x: NodeId) -> Result<SequenceAxis> {
        let s = self.check("sequence_axis_of", x)?;
        match s.seq_axis() {
            Some(k) => Ok(SequenceAxis(k)),
            None => shape_err(
                "sequence_axis_of",
                format!("needs a sequence tensor [batch, seq, ..], got {s}"),
            ),
        }
    }

    /// The lengths node of `axis`.
    pub fn axis_lengths(&self, axis: SequenceAxis) -> NodeId {
        self.axes.borrow()[axis.0 as usize].lengths
    }

    /// The lengths node of sequence axis `k` (which must exist).
    pub(crate) fn lengths_of_axis(&self, k: u8) -> NodeId {
        self.axes.borrow()[k as usize].lengths
    }
}
