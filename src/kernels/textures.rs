//! Product and learner-update operands read from textures on CPU adapters.
//!
//! lavapipe compiles each storage-buffer load into a loop over the lanes with a bounds branch
//! per lane, but a texel fetch into one branchless gather (measured in benches/RESULTS.md). So on CPU
//! adapters a plan copies the operands of its subgroup matrix products into two rgba32float
//! textures just before each product (copies are memcpys, not dispatches), and the products
//! run the texture kernel (matmul_texture.wgsl). Learner updates likewise read their
//! gradients, parameters and state from copies made before their check pass
//! (optim_texture.wgsl). A tensor is laid out flat: float `i` is
//! component `i % 4` of texel `i / 4`, at `(texel % TEXTURE_WIDTH, texel / TEXTURE_WIDTH)`.

use super::{Gather, Kernel, Params, Rule, Slice, TEXTURE_BLOCKS, TEXTURE_WIDTH};
use crate::device::{Context, OperandTextures};
use crate::Result;

/// Bytes per texel (rgba32float).
const TEXEL_BYTES: u64 = 16;

/// Copies `texels` texels of a buffer, from byte `offset`, to the start of a texture.
pub(crate) struct TextureCopy {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub texels: usize,
    pub texture: wgpu::Texture,
}

impl TextureCopy {
    /// Records the copy: the full texture rows, then the partial last one.
    pub(crate) fn record(&self, enc: &mut wgpu::CommandEncoder) {
        let row_bytes = TEXTURE_WIDTH as u64 * TEXEL_BYTES;
        let (full, rest) = (self.texels / TEXTURE_WIDTH, self.texels % TEXTURE_WIDTH);
        let mut copy = |from: u64, y: usize, width: usize, height: usize| {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: self.offset + from,
                        bytes_per_row: Some(row_bytes as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: y as u32,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: width as u32,
                    height: height as u32,
                    depth_or_array_layers: 1,
                },
            )
        };
        if full > 0 {
            copy(0, 0, TEXTURE_WIDTH, full);
        }
        if rest > 0 {
            copy(full as u64 * row_bytes, full, rest, 1);
        }
    }
}

/// A copy recorded just before a dispatch, outside its compute pass.
pub(crate) enum StepCopy {
    /// An operand into its texture.
    Texture(TextureCopy),
    /// `bytes` bytes from one buffer to another: a value the device computed, copied into
    /// a uniform block the kernel reads (uniform reads are cheap on lavapipe, storage loads
    /// of one shared value are not).
    Buffer {
        from: wgpu::Buffer,
        from_offset: u64,
        to: wgpu::Buffer,
        to_offset: u64,
        bytes: u64,
    },
}

impl StepCopy {
    /// Records the copy.
    pub(crate) fn record(&self, enc: &mut wgpu::CommandEncoder) {
        match self {
            StepCopy::Texture(t) => t.record(enc),
            StepCopy::Buffer {
                from,
                from_offset,
                to,
                to_offset,
                bytes,
            } => enc.copy_buffer_to_buffer(from, *from_offset, to, *to_offset, *bytes),
        }
    }
}

/// What a product reads through textures: its texture kernel and workgroups, and the texels
/// of A and B to copy.
pub(crate) struct TextureProduct {
    pub kernel: Kernel,
    pub groups: [u32; 3],
    pub texels: [usize; 2],
}

/// The texture version of a subgroup product (`kernel`, `params`, `groups`, operands A
/// and B), or `None` where it does not apply: other kernels, flipped filters, operands
/// whose length is not a whole number of texels, unaligned or too large for a texture, and
/// (unless `OperandTextures::Always`) products where it would not pay.
pub(crate) fn texture_product(
    ctx: &Context,
    kernel: Kernel,
    params: &Params,
    groups: [u32; 3],
    operands: [Slice; 2],
) -> Option<TextureProduct> {
    let Kernel::MatmulSubgroup {
        ta,
        tb,
        sg,
        rows,
        epi,
        act,
        gather,
        ..
    } = kernel
    else {
        return None;
    };
    if ctx.options.textures == OperandTextures::Never {
        return None;
    }
    let Params::Product(p) = params else {
        return None;
    };
    let [m, n, k, zsum, a_batch, b_batch] =
        [p.m, p.n, p.k, p.zsum, p.a_batch, p.b_batch].map(|w| w as usize);
    let items = if zsum > 1 { zsum } else { groups[2] as usize };
    // A gathered B is the images, one per batch item.
    let b_floats = match gather {
        Gather::None => (items - 1) * b_batch + k * n,
        Gather::Im2col(w) if b_batch == w.c * w.h * w.w => items * b_batch,
        _ => return None,
    };
    let floats = [(items - 1) * a_batch + m * k, b_floats];
    let max_texels = TEXTURE_WIDTH * ctx.limits.max_texture_dimension_2d as usize;
    let fits = |f: usize, s: &Slice| {
        f.is_multiple_of(4) && s.offset.is_multiple_of(TEXEL_BYTES) && f / 4 <= max_texels
    };
    if !fits(floats[0], &operands[0]) || !fits(floats[1], &operands[1]) {
        return None;
    }
    // A texel of A holds 4 k-steps of a row, or (transposed) 4 rows of a k-step, which the
    // kernel reads for blocks of at least 4 rows per lane.
    let va = a_batch.is_multiple_of(4)
        && match ta {
            false => k.is_multiple_of(4),
            true => m.is_multiple_of(4) && rows as u32 >= 4 * sg as u32,
        };
    let vb = gather == Gather::None
        && (if tb { k } else { n }).is_multiple_of(4)
        && b_batch.is_multiple_of(4);
    // A float fetched alone from a texture costs about what a storage load does, so the
    // copies pay only where an operand is read 4 floats per texel: B, or, when B is gathered
    // through a window (a float at a time, wherever it is read from), A in blocks tall
    // enough that A's loads outnumber B's (4 rows per lane: the MNIST CNN's products of 8
    // or 16 filters ran no faster through textures, a 64-filter layer 1.5× faster).
    let pays = vb || (gather != Gather::None && va && rows as u32 >= 4 * sg as u32);
    if !pays && ctx.options.textures != OperandTextures::Always {
        return None;
    }
    // 8 columns per lane where the product is wide enough to fill them.
    let c4 = if rows == 64 && n >= 64 * sg as usize {
        2
    } else {
        1
    };
    debug_assert!(TEXTURE_BLOCKS.contains(&(sg as u32, rows as u32, c4)));
    Some(TextureProduct {
        kernel: Kernel::MatmulTexture {
            ta,
            tb,
            va,
            vb,
            sg,
            rows,
            c4: c4 as u8,
            epi,
            act,
            gather,
        },
        groups: [
            n.div_ceil(4 * c4 as usize * sg as usize) as u32,
            groups[1],
            groups[2],
        ],
        texels: floats.map(|f| f / 4),
    })
}

/// The texture version of a learner update of `len` floats from 16-byte aligned offsets, or
/// `None` where it does not apply: GPU adapters, `OperandTextures::Never`, or a range too
/// large for a texture. A vec4 load from storage costs lavapipe 6× a texel fetch, and a copy
/// into a texture runs at memcpy speed, so the copies pay for any update (measured in
/// benches/RESULTS.md, 2026-12-07 second session).
pub(crate) fn texture_update(ctx: &Context, rule: Rule, len: usize) -> Option<Kernel> {
    let wanted = match ctx.options.textures {
        OperandTextures::Never => false,
        OperandTextures::Auto => ctx.is_cpu(),
        OperandTextures::Always => true,
    };
    let max_texels = TEXTURE_WIDTH * ctx.limits.max_texture_dimension_2d as usize;
    (wanted && len.div_ceil(4) <= max_texels).then_some(Kernel::Update {
        rule,
        textures: true,
    })
}

/// The texture that holds up to `texels` texels of product operands.
pub(crate) fn operand_texture(ctx: &Context, texels: usize) -> Result<wgpu::Texture> {
    let height = texels.div_ceil(TEXTURE_WIDTH).max(1);
    Ok(ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("operand texels"),
        size: wgpu::Extent3d {
            width: TEXTURE_WIDTH as u32,
            height: height as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    }))
}
