// Window geometry, shared by conv.wgsl, pool.wgsl and (for convolutions read straight from
// the image) the matrix-product kernels, which src/kernels/source.rs prepends this file to.
//
// The geometry is fixed per pipeline (override constants), so that the many integer
// divisions by it compile to multiplications: lavapipe has no vector integer division and
// scalarises it, which made these kernels several times slower with the sizes in a uniform.
// The defaults only serve pipelines that do not use a window.

override WC: u32 = 1u;   // channels
override WH: u32 = 1u;   // input height
override WW: u32 = 1u;   // input width
override KH: u32 = 1u;   // kernel height
override KW: u32 = 1u;   // kernel width
override SH: u32 = 1u;   // strides
override SW: u32 = 1u;
override PH: u32 = 0u;   // leading padding
override PW: u32 = 0u;
override DH: u32 = 1u;   // dilations
override DW: u32 = 1u;
override OH: u32 = 1u;   // output height
override OW: u32 = 1u;   // output width

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

// Where element `tap` = (c·KH + kh)·KW + kw of the window of output position
// `pos` = oh·OW + ow lies in one NCHW image, or OUTSIDE in the padding: the element
// im2col writes at cols[pos, tap].
const OUTSIDE: u32 = 0xffffffffu;

// The input gradient of a stride-1 convolution is a convolution of the output gradient with
// the filters flipped and their channel axes swapped: the product's A is then
// A[c, (o·KH + kh)·KW + kw] = w[o, c, KH-1-kh, KW-1-kw] for filters w [O, C, KH, KW];
// this is where that element lies in w.
fn flipped_filter_index(c: u32, k: u32, channels: u32) -> u32 {
    let taps = KH * KW;
    return (k / taps * channels + c) * taps + taps - 1u - k % taps;
}
fn patch_index(pos: u32, tap: u32) -> u32 {
    let kw = tap % KW;
    let kh = (tap / KW) % KH;
    let c = tap / (KW * KH);
    // Above or left of the image the unsigned subtraction wraps past the size.
    let ih = (pos / OW) * SH + kh * DH - PH;
    let iw = (pos % OW) * SW + kw * DW - PW;
    return select(OUTSIDE, (c * WH + ih) * WW + iw, ih < WH && iw < WW);
}
