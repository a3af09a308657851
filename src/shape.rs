//! Shapes with symbolic batch and sequence dimensions.
//!
//! Input variables have a batch axis whose size is only known when data is fed (and may change
//! between calls, e.g. for a last partial minibatch). Sequence inputs also have a sequence
//! axis (the steps, right after the batch axis), padded to the longest sequence of the
//! minibatch. A graph may have several sequence axes (a word's letters and its phonemes),
//! each with its own lengths: [`Dim::Seq`] names the axis by number. A [`Shape`] keeps these
//! axes symbolic; a plan binds them to numbers with [`Shape::dims`].

use std::fmt;

/// One axis of a shape: either fixed, or the minibatch size fed at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The minibatch axis, sized by the feed.
    Batch,
    /// A sequence axis (0 is the graph's first; see `Graph::sequence_axis`): the steps of the
    /// minibatch's sequences, padded.
    Seq(u8),
    /// A size known when the graph is built.
    Fixed(usize),
}

/// The most sequence axes a graph may have.
pub const MAX_SEQ_AXES: usize = 8;

/// The sizes a feed binds the symbolic axes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sizes {
    /// Samples (sequences) in the minibatch.
    pub batch: usize,
    /// Padded steps of each sequence axis; 1 for an axis the feed does not use.
    pub steps: [usize; MAX_SEQ_AXES],
}

impl Sizes {
    /// A minibatch of `batch` samples and no sequence axis.
    pub fn batch(batch: usize) -> Sizes {
        Sizes {
            batch,
            steps: [1; MAX_SEQ_AXES],
        }
    }

    /// A minibatch of `batch` sequences padded to `steps` on the first sequence axis.
    pub fn sequences(batch: usize, steps: usize) -> Sizes {
        let mut s = Sizes::batch(batch);
        s.steps[0] = steps;
        s
    }
}

impl Dim {
    /// The size once the batch size is known (the sequence axis counts 1 step: use
    /// [`Dim::size`] where one may occur).
    pub fn resolve(self, batch: usize) -> usize {
        self.size(Sizes::batch(batch))
    }

    /// The size once the feed's sizes are known.
    pub fn size(self, s: Sizes) -> usize {
        match self {
            Dim::Batch => s.batch,
            Dim::Seq(k) => s.steps[k as usize],
            Dim::Fixed(n) => n,
        }
    }
}

/// A tensor shape, row-major; may contain [`Dim::Batch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape with fixed sizes only.
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Fixed(d)).collect())
    }

    /// A shape whose first axis is the batch axis, followed by `dims`.
    pub fn batched(dims: &[usize]) -> Shape {
        let mut v = vec![Dim::Batch];
        v.extend(dims.iter().map(|&d| Dim::Fixed(d)));
        Shape(v)
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// True when an axis is the batch axis.
    pub fn has_batch(&self) -> bool {
        self.0.contains(&Dim::Batch)
    }

    /// Concrete sizes for a batch size (a sequence axis counts 1 step).
    pub fn resolve(&self, batch: usize) -> Vec<usize> {
        self.dims(Sizes::batch(batch))
    }

    /// Concrete sizes once the feed's sizes are known.
    pub fn dims(&self, s: Sizes) -> Vec<usize> {
        self.0.iter().map(|d| d.size(s)).collect()
    }

    /// True when an axis is a sequence axis.
    pub fn has_seq(&self) -> bool {
        self.0.iter().any(|d| matches!(d, Dim::Seq(_)))
    }

    /// The sequence axis of a sequence tensor `[batch, seq, ..]`; `None` for other shapes.
    pub fn seq_axis(&self) -> Option<u8> {
        match self.0.get(..2) {
            Some([Dim::Batch, Dim::Seq(k)]) => Some(*k),
            _ => None,
        }
    }

    /// Element count of the fixed axes (the batch and sequence axes count as 1).
    pub fn per_sample(&self) -> usize {
        self.resolve(1).iter().product()
    }

    /// True when every axis is 1 (or there are none).
    pub fn is_scalar(&self) -> bool {
        self.0.iter().all(|&d| d == Dim::Fixed(1))
    }

    /// Normalises a possibly negative axis index.
    pub fn axis(&self, op: &'static str, axis: isize) -> crate::Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return crate::error::shape_err(
                op,
                format!("axis {axis} out of range for shape {self}"),
            );
        }
        Ok(a as usize)
    }

    /// The numpy broadcast of two shapes, or an error naming both.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> crate::Result<Shape> {
        let r = a.rank().max(b.rank());
        let mut out = Vec::with_capacity(r);
        for i in 0..r {
            let da = if i + a.rank() >= r {
                a.0[i + a.rank() - r]
            } else {
                Dim::Fixed(1)
            };
            let db = if i + b.rank() >= r {
                b.0[i + b.rank() - r]
            } else {
                Dim::Fixed(1)
            };
            let d = match (da, db) {
                (x, y) if x == y => x,
                (Dim::Fixed(1), y) => y,
                (x, Dim::Fixed(1)) => x,
                _ => {
                    return crate::error::shape_err(
                        op,
                        format!("shapes {a} and {b} cannot be broadcast together"),
                    )
                }
            };
            out.push(d);
        }
        Ok(Shape(out))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match d {
                Dim::Batch => write!(f, "batch")?,
                Dim::Seq(0) => write!(f, "seq")?,
                Dim::Seq(k) => write!(f, "seq{k}")?,
                Dim::Fixed(n) => write!(f, "{n}")?,
            }
        }
        write!(f, "]")
    }
}

/// Row-major strides of concrete dims.
pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}
