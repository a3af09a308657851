//! Binding buffers to kernels: the part of a buffer a binding sees, bind groups, workgroup
//! counts, and one-off dispatches outside any plan.

use super::contract::Params;
use super::kernel::{pipeline, Binding, Kernel};
use crate::device::{Context, PARAMS_SIZE};
use crate::dtype::DType;
use crate::Result;

/// Workgroup counts for one workgroup per item, `n` items (a 2-D grid past 65,535).
pub(crate) fn groups_per_item(n: usize) -> [u32; 3] {
    let x = n.clamp(1, 65535);
    [x as u32, n.div_ceil(x).max(1) as u32, 1]
}

/// Workgroup counts for `n` invocations of a 256-wide 1-D kernel, folded into x and y so
/// that no dimension exceeds the adapter's limit; kernels rebuild the index as
/// `gid.x + gid.y * num_workgroups.x * 256`.
pub(crate) fn groups_1d(n: usize) -> [u32; 3] {
    let wg = n.div_ceil(256).max(1);
    let x = wg.min(65535);
    [x as u32, wg.div_ceil(x) as u32, 1]
}

/// The part of a buffer that one binding sees: a whole buffer, or a tensor inside an arena.
#[derive(Clone, Copy)]
pub(crate) struct Slice<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Bytes from the start of the buffer (a multiple of the adapter's offset alignment).
    pub offset: u64,
    /// Bytes seen; `None`: to the end of the buffer.
    pub size: Option<wgpu::BufferSize>,
}

impl<'a> Slice<'a> {
    /// `n` elements of `dtype` from byte `offset`, the size rounded up to 16 bytes (kernels
    /// that read vec4s need it; they never read past `n` for a result).
    pub fn elems(buffer: &'a wgpu::Buffer, offset: u64, n: usize, dtype: DType) -> Slice<'a> {
        let bytes = (n.max(1) * dtype.size()) as u64;
        Slice {
            buffer,
            offset,
            size: wgpu::BufferSize::new(bytes.next_multiple_of(16)),
        }
    }
}

impl<'a> From<&'a crate::device::Buffer> for Slice<'a> {
    fn from(buffer: &'a crate::device::Buffer) -> Slice<'a> {
        Slice::from(&**buffer)
    }
}

impl<'a> From<&'a wgpu::Buffer> for Slice<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Slice<'a> {
        Slice {
            buffer,
            offset: 0,
            size: None,
        }
    }
}

/// Makes the bind group of one dispatch: the parameter block at `offset` in `params`, then
/// `buffers` and `textures` in the order of the kernel's bindings (unused ones skipped).
pub(crate) fn bind_group(
    ctx: &Context,
    kernel: Kernel,
    params: &wgpu::Buffer,
    offset: u64,
    buffers: &[Slice],
    textures: &[&wgpu::TextureView],
) -> Result<wgpu::BindGroup> {
    let pipeline = pipeline(ctx, kernel)?;
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params,
            offset,
            size: wgpu::BufferSize::new(PARAMS_SIZE),
        }),
    }];
    let mut next = buffers.iter();
    let mut next_texture = textures.iter();
    for (i, b) in kernel.bindings().iter().enumerate() {
        let resource = match b {
            Binding::Unused => continue,
            Binding::Texture => wgpu::BindingResource::TextureView(
                next_texture
                    .next()
                    .expect("bind_group: fewer textures than the bindings"),
            ),
            _ => {
                let buf = next
                    .next()
                    .expect("bind_group: fewer buffers than the bindings");
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf.buffer,
                    offset: buf.offset,
                    size: buf.size,
                })
            }
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource,
        });
    }
    ctx.scoped(&format!("binding kernel {kernel:?}"), || {
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    })
}

/// Runs one kernel once, outside any plan (used for fills and one-off tensor ops).
pub(crate) fn run_once(
    ctx: &Context,
    kernel: Kernel,
    params: &Params,
    buffers: &[Slice],
    groups: [u32; 3],
) -> Result<()> {
    let pbuf = ctx.buffer(
        "params",
        PARAMS_SIZE,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    ctx.queue.write_buffer(&pbuf, 0, params.bytes());
    let bg = bind_group(ctx, kernel, &pbuf, 0, buffers, &[])?;
    let pipe = pipeline(ctx, kernel)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
    ctx.submit(enc.finish());
    Ok(())
}
