//! The graph: a plain vector of nodes, each an [`Op`] over earlier nodes with an inferred
//! [`Shape`]. Ops are added through [`Graph`]'s methods, which check shapes and return an
//! error naming the op and both shapes on a mismatch.
//!
//! The graph uses interior mutability so that calls nest: `g.add(g.matmul(x, w)?, b)?`.

mod axes;
mod grad;
mod op;
mod scan;

use std::cell::{Ref, RefCell};

use crate::dtype::DType;
use crate::error::shape_err;
use crate::shape::{Dim, Shape};
use crate::{Error, Result};

pub use axes::{AxisInfo, SequenceAxis};
pub use op::{AttnPart, BinaryOp, Op, ReduceOp, UnaryOp, Window};
pub use scan::{ScanCarry, ScanSpec};

/// The name of the input that holds the sequence lengths ([`Graph::sequence_lengths`]).
pub const SEQUENCE_LENGTHS: &str = "sequence lengths";

/// A node of a [`Graph`]; cheap to copy. It remembers which graph made it, so that an id
/// used with another graph (or another graph's executor) is an error, not another node.
/// Ids compare, hash and order by their index alone.
#[derive(Clone, Copy)]
pub struct NodeId(pub(crate) usize, pub(crate) GraphTag);

/// Which graph made a node id; 0 for ids made inside wgrad, which match any graph.
pub(crate) type GraphTag = u32;

impl NodeId {
    /// The node's index in its graph.
    pub fn index(self) -> usize {
        self.0
    }

    /// The id of node `i` of whichever graph is at hand (for wgrad's own loops over nodes).
    pub(crate) const fn at(i: usize) -> NodeId {
        NodeId(i, 0)
    }

    /// Whether the id may name a node of the graph tagged `tag`.
    pub(crate) fn of_graph(self, tag: GraphTag) -> bool {
        self.1 == 0 || self.1 == tag
    }
}

impl PartialEq for NodeId {
    fn eq(&self, other: &NodeId) -> bool {
        self.0 == other.0
    }
}

impl Eq for NodeId {}

impl std::hash::Hash for NodeId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &NodeId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NodeId {
    fn cmp(&self, other: &NodeId) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl std::fmt::Debug for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A tag for each new graph (from 1).
fn next_tag() -> GraphTag {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .max(1)
}

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// Every element the same value.
    Const(f32),
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
    },
    /// Normal with mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Glorot/Xavier uniform, CNTK's default: U(±sqrt(6 / (fan_in + fan_out))), where
    /// fan_out is the last axis and fan_in the product of the others.
    GlorotUniform,
    /// He normal: N(0, sqrt(2 / fan_in)).
    HeNormal,
    /// A random matrix with orthonormal rows or columns (whichever are fewer), times
    /// `gain`; higher ranks are flattened to `[first axis, rest]`. For recurrent weights.
    Orthogonal {
        /// Scale of the orthonormal matrix.
        gain: f32,
    },
    /// The values given to [`Graph::parameter_from`].
    Given,
}

/// A node: its op and its inferred shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// What computes it.
    pub op: Op,
    /// Its shape (possibly with a batch axis).
    pub shape: Shape,
    /// The type of its elements (f32 for every node today).
    pub dtype: DType,
}

/// A computation graph. Nodes are only ever appended, so ids are in topological order.
pub struct Graph {
    nodes: RefCell<Vec<Node>>,
    assigns: RefCell<Vec<(NodeId, NodeId)>>,
    given: RefCell<Vec<(NodeId, std::rc::Rc<[f32]>)>>,
    axes: RefCell<Vec<AxisInfo>>,
    seed: u64,
    /// Marks the ids this graph hands out.
    tag: GraphTag,
}

impl Default for Graph {
    fn default() -> Graph {
        Graph::with_seed(0)
    }
}

impl Graph {
    /// An empty graph; parameter initialisers are seeded from 0.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An empty graph whose parameter initialisers derive from `seed`.
    pub fn with_seed(seed: u64) -> Graph {
        Graph {
            nodes: RefCell::default(),
            assigns: RefCell::default(),
            given: RefCell::default(),
            axes: RefCell::default(),
            seed,
            tag: next_tag(),
        }
    }

    /// The tag of the ids this graph hands out.
    pub(crate) fn tag(&self) -> GraphTag {
        self.tag
    }

    /// A snapshot of the nodes.
    pub fn nodes(&self) -> Ref<'_, Vec<Node>> {
        self.nodes.borrow()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of a node. Panics if `id` is not a node of this graph (every op builder
    /// returns an error for such an id instead).
    pub fn shape(&self, id: NodeId) -> Shape {
        assert!(
            id.of_graph(self.tag),
            "Graph::shape: node {} belongs to another graph",
            id.0
        );
        self.nodes.borrow()[id.0].shape.clone()
    }

    /// All trainable parameters, in creation order.
    pub fn parameters(&self) -> Vec<NodeId> {
        self.ids_where(|op| {
            matches!(
                op,
                Op::Param {
                    trainable: true,
                    ..
                }
            )
        })
    }

    /// Every parameter and state variable (what a checkpoint holds), in creation order.
    pub fn variables(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Param { .. }))
    }

    /// Registers `state ← value` to run at the end of each training step (e.g. batch-norm
    /// running averages). `state` must be a non-trainable variable of the same shape.
    pub fn assign(&self, state: NodeId, value: NodeId) -> Result<()> {
        let (ss, vs) = (self.check("assign", state)?, self.check("assign", value)?);
        if !matches!(
            self.nodes.borrow()[state.0].op,
            Op::Param {
                trainable: false,
                ..
            }
        ) {
            return Err(Error::Invalid(format!(
                "assign: node {} is not a state variable",
                state.0
            )));
        }
        if ss != vs {
            return shape_err("assign", format!("state {ss} and value {vs} differ"));
        }
        self.assigns.borrow_mut().push((state, value));
        Ok(())
    }

    /// The registered `(state, value)` assignments.
    pub fn assignments(&self) -> Vec<(NodeId, NodeId)> {
        self.assigns.borrow().clone()
    }

    /// All inputs, in creation order.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Input { .. }))
    }

    /// The name of an input or parameter node (`None` for other nodes and for ids not in
    /// this graph).
    pub fn name(&self, id: NodeId) -> Option<String> {
        if !id.of_graph(self.tag) {
            return None;
        }
        match self.nodes.borrow().get(id.0).map(|n| &n.op) {
            Some(Op::Input { name } | Op::Param { name, .. }) => Some(name.clone()),
            _ => None,
        }
    }

    /// The parameter or input called `name`.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .borrow()
            .iter()
            .position(
                |n| matches!(&n.op, Op::Input { name: m } | Op::Param { name: m, .. } if m == name),
            )
            .map(|i| NodeId(i, self.tag))
    }

    fn ids_where(&self, f: impl Fn(&Op) -> bool) -> Vec<NodeId> {
        let nodes = self.nodes.borrow();
        (0..nodes.len())
            .filter(|&i| f(&nodes[i].op))
            .map(|i| NodeId(i, self.tag))
            .collect()
    }

    pub(crate) fn check(&self, op: &'static str, id: NodeId) -> Result<Shape> {
        if !id.of_graph(self.tag) {
            return Err(Error::Invalid(format!(
                "{op}: node {} belongs to another graph",
                id.0
            )));
        }
        let nodes = self.nodes.borrow();
        nodes
            .get(id.0)
            .map(|n| n.shape.clone())
            .ok_or_else(|| Error::Invalid(format!("{op}: node {} is not in this graph", id.0)))
    }

    /// A seed for a random op, derived from the graph's seed and the node count.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.len() as u64)
    }

    pub(crate) fn push(&self, op: Op, shape: Shape) -> NodeId {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            op,
            shape,
            dtype: DType::F32,
        });
        NodeId(nodes.len() - 1, self.tag)
    }

    /// An input with a leading batch axis: `input("x", &[2])` has shape `[batch, 2]`.
    pub fn input(&self, name: &str, dims: &[usize]) -> Result<NodeId> {
        self.input_with_shape(name, Shape::batched(dims))
    }

    /// An input of any shape (at most one batch axis).
    pub fn input_with_shape(&self, name: &str, shape: Shape) -> Result<NodeId> {
        if shape.0.iter().filter(|d| **d == Dim::Batch).count() > 1 {
            return shape_err(
                "input",
                format!("{name}: at most one batch axis, got {shape}"),
            );
        }
        let seqs = shape.0.iter().filter(|d| matches!(d, Dim::Seq(_))).count();
        if seqs > 1 || (seqs == 1 && shape.seq_axis().is_none()) {
            return shape_err(
                "input",
                format!("{name}: one sequence axis, right after the batch axis, got {shape}"),
            );
        }
        if let Some(k) = shape.seq_axis() {
            if k as usize >= self.axes.borrow().len() {
                return shape_err(
                    "input",
                    format!("{name}: sequence axis {k} is not an axis of this graph (Graph::sequence_axis makes one)"),
                );
            }
        }
        if !fits(&shape.resolve(1)) {
            return shape_err(
                "input",
                format!("{name}: {shape} has 2^32 or more elements per sample"),
            );
        }
        if shape.0.contains(&Dim::Fixed(0)) {
            return shape_err("input", format!("{name}: empty axis in {shape}"));
        }
        if self.find(name).is_some() {
            return Err(Error::Invalid(format!(
                "input: the name {name} is already used"
            )));
        }
        Ok(self.push(Op::Input { name: name.into() }, shape))
    }

    /// A learnable parameter of fixed shape.
    pub fn parameter(&self, name: &str, dims: &[usize], init: Init) -> Result<NodeId> {
        self.variable(name, dims, init, true)
    }

    /// A parameter that starts from `values` (row-major, `dims`' element count, all finite),
    /// e.g. an embedding table trained elsewhere.
    pub fn parameter_from(&self, name: &str, dims: &[usize], values: &[f32]) -> Result<NodeId> {
        self.variable_from(name, dims, values, true)
    }

    /// A variable that starts from `values`: a parameter when `trainable`, else state (an
    /// imported model's running statistics, say).
    pub(crate) fn variable_from(
        &self,
        name: &str,
        dims: &[usize],
        values: &[f32],
        trainable: bool,
    ) -> Result<NodeId> {
        let want: usize = dims.iter().product();
        if values.len() != want {
            return shape_err(
                "parameter",
                format!(
                    "{name}: {} values given for {dims:?} ({want})",
                    values.len()
                ),
            );
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "parameter: {name}: value {i} is {} (initial values must be finite)",
                values[i]
            )));
        }
        let id = self.variable(name, dims, Init::Given, trainable)?;
        self.given.borrow_mut().push((id, values.into()));
        Ok(id)
    }

    /// The values a parameter made by [`Graph::parameter_from`] starts from.
    pub(crate) fn given_values(&self, id: NodeId) -> Option<std::rc::Rc<[f32]>> {
        let given = self.given.borrow();
        given.iter().find(|(g, _)| *g == id).map(|(_, v)| v.clone())
    }

    /// A variable kept on the device across steps: a parameter when `trainable`, else state
    /// that only [`Graph::assign`] changes.
    pub fn variable(
        &self,
        name: &str,
        dims: &[usize],
        init: Init,
        trainable: bool,
    ) -> Result<NodeId> {
        if !fits(dims) {
            return shape_err(
                "parameter",
                format!("{name}: {dims:?} has 2^32 or more elements"),
            );
        }
        if dims.contains(&0) {
            return shape_err("parameter", format!("{name}: empty axis in {dims:?}"));
        }
        if self.find(name).is_some() {
            return Err(Error::Invalid(format!(
                "parameter: the name {name} is already used"
            )));
        }
        let seed = self.next_seed();
        Ok(self.push(
            Op::Param {
                name: name.into(),
                init,
                seed,
                trainable,
            },
            Shape::fixed(dims),
        ))
    }

    /// A constant tensor of fixed shape, every element `value`.
    pub fn constant(&self, value: f32, dims: &[usize]) -> NodeId {
        self.push(Op::Const { value }, Shape::fixed(dims))
    }

    /// A scalar constant (shape `[]`), broadcast against anything.
    pub fn scalar(&self, value: f32) -> NodeId {
        self.constant(value, &[])
    }
}

/// Whether a tensor of `dims` has fewer than 2^32 elements (kernels index with u32), with
/// the product checked.
fn fits(dims: &[usize]) -> bool {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_some_and(|n| n < 1 << 32)
}
