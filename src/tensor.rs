//! [`Tensor`]: an f32 buffer on the device with a concrete shape.

use crate::device::{Buffer, Context};
use crate::dtype::DType;
use crate::kernels::contract::{FillCode, FillParams};
use crate::kernels::{groups_1d, run_once, Kernel, Params, Slice};
use crate::{Error, Result};

/// How to fill a new tensor. Random fills run on the GPU from a counter-based generator, so
/// a seed gives the same numbers on every adapter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// Every element the same value.
    Const(f32),
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
        /// Generator seed.
        seed: u64,
    },
    /// Normal with the given mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
        /// Generator seed.
        seed: u64,
    },
    /// NaN everywhere (used to poison buffers in tests).
    Nan,
}

/// A tensor living in a GPU buffer (its elements f32 today; the host side reads and writes
/// f32).
pub struct Tensor {
    pub(crate) buffer: Buffer,
    /// Bytes from the start of `buffer` (non-zero for tensors inside an arena).
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl Tensor {
    /// Uploads host data; `data.len()` must equal the product of `shape`.
    pub fn from_slice(ctx: &Context, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Invalid(format!(
                "Tensor::from_slice: {} values given for shape {shape:?} ({n} elements)",
                data.len()
            )));
        }
        let t = Tensor::empty(ctx, shape)?;
        ctx.queue
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// A tensor whose contents are unspecified until written.
    pub(crate) fn empty(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let dtype = DType::F32;
        let buffer = ctx.storage(&format!("tensor {shape:?}"), n, dtype)?;
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A tensor stored in `buffer` from byte `offset` (aligned for binding).
    pub(crate) fn view(buffer: &Buffer, offset: u64, shape: &[usize]) -> Tensor {
        Tensor {
            buffer: buffer.clone(),
            offset,
            shape: shape.to_vec(),
            dtype: DType::F32,
        }
    }

    /// What a kernel binding sees of this tensor.
    pub(crate) fn slice(&self) -> Slice<'_> {
        Slice::elems(&self.buffer, self.offset, self.len(), self.dtype)
    }

    /// A new tensor filled on the device.
    pub fn filled(ctx: &Context, shape: &[usize], fill: Fill) -> Result<Tensor> {
        let t = Tensor::empty(ctx, shape)?;
        t.fill(ctx, fill)?;
        Ok(t)
    }

    /// All zeros.
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        Tensor::filled(ctx, shape, Fill::Const(0.0))
    }

    /// All ones.
    pub fn ones(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        Tensor::filled(ctx, shape, Fill::Const(1.0))
    }

    /// Overwrites every element on the device.
    pub fn fill(&self, ctx: &Context, fill: Fill) -> Result<()> {
        let n = self.len();
        run_once(
            ctx,
            Kernel::Fill,
            &fill_params(n, fill),
            &[self.slice()],
            groups_1d(n),
        )
    }

    /// Replaces the contents with host data of the same length.
    pub fn write(&self, ctx: &Context, data: &[f32]) -> Result<()> {
        if data.len() != self.len() {
            return Err(Error::Invalid(format!(
                "Tensor::write: {} values given for shape {:?}",
                data.len(),
                self.shape
            )));
        }
        ctx.queue
            .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Downloads the contents (blocking).
    pub fn to_vec(&self, ctx: &Context) -> Result<Vec<f32>> {
        ctx.read(&self.buffer, self.offset, self.len())
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parameter block of the fill kernel.
pub(crate) fn fill_params(n: usize, fill: Fill) -> Params {
    let (op, seed, a, b) = match fill {
        Fill::Const(v) => (FillCode::Const, 0u64, v, 0.0),
        Fill::Uniform { low, high, seed } => (FillCode::Uniform, seed, low, high),
        Fill::Normal { mean, std, seed } => (FillCode::Normal, seed, mean, std),
        Fill::Nan => (FillCode::Nan, 0, 0.0, 0.0),
    };
    Params::Fill(FillParams {
        n: n as u32,
        op: op as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        a,
        b,
        ..Default::default()
    })
}
