// Shared by conv.wgsl and pool.wgsl, which src/kernels.rs prepends this file to.
//
// The window geometry is fixed per pipeline (override constants), so that the many integer
// divisions by it compile to multiplications: lavapipe has no vector integer division and
// scalarises it, which made these kernels several times slower with the sizes in a uniform.
// Only the batch size, which changes between calls, comes in the uniform.

override WC: u32;   // channels
override WH: u32;   // input height
override WW: u32;   // input width
override KH: u32;   // kernel height
override KW: u32;   // kernel width
override SH: u32;   // strides
override SW: u32;
override PH: u32;   // leading padding
override PW: u32;
override DH: u32;   // dilations
override DW: u32;
override OH: u32;   // output height
override OW: u32;   // output width

struct Win {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Win;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The output positions whose windows can contain input pixel (ih, iw): rows oh with
// oh·SH ≤ ih + PH ≤ oh·SH + (KH-1)·DH, and likewise columns, as (oh_lo, oh_hi, ow_lo, ow_hi),
// found with a few divisions instead of a loop of them (integer division is slow on CPU
// adapters). Empty when lo > hi.
fn covering(ih: u32, iw: u32) -> vec4<u32> {
    let th = ih + PH;
    let tw = iw + PW;
    let span_h = (KH - 1u) * DH;
    let span_w = (KW - 1u) * DW;
    return vec4<u32>(
        select(0u, (th - span_h + SH - 1u) / SH, th > span_h),
        min(th / SH, OH - 1u),
        select(0u, (tw - span_w + SW - 1u) / SW, tw > span_w),
        min(tw / SW, OW - 1u),
    );
}
