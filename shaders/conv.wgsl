// Convolution as GEMM: im2col gathers the sliding windows of an NCHW image into rows,
//   cols[n, oh·OW + ow, (c·KH + kh)·KW + kw] = x[n, c, oh·SH + kh·DH - PH, ow·SW + kw·DW - PW]
// (zero outside the image), and col2im is its adjoint, summing every window element back
// onto the pixel it came from. Both are gathers: one invocation per output element, no atomics.

struct Win {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    oh: u32,
    ow: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Win;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// One invocation per (image, output position, channel) writes that channel's KH·KW window.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let ohw = p.oh * p.ow;
    if (i >= p.n * ohw * p.c) {
        return;
    }
    let c = i % p.c;
    let row = i / p.c;          // n · OH·OW + position
    let pos = row % ohw;
    let n = row / ohw;
    let top = i32((pos / p.ow) * p.sh) - i32(p.ph);
    let left = i32((pos % p.ow) * p.sw) - i32(p.pw);
    let plane = (n * p.c + c) * p.h;
    var out = (row * p.c + c) * p.kh * p.kw;
    for (var kh = 0u; kh < p.kh; kh++) {
        let ih = top + i32(kh * p.dh);
        let inside_h = ih >= 0 && ih < i32(p.h);
        let src = (plane + u32(max(ih, 0))) * p.w;
        for (var kw = 0u; kw < p.kw; kw++) {
            let iw = left + i32(kw * p.dw);
            var v = 0.0;
            if (inside_h && iw >= 0 && iw < i32(p.w)) {
                v = x[src + u32(iw)];
            }
            y[out] = v;
            out += 1u;
        }
    }
}

// One invocation per input pixel sums the window elements that read it; only the output
// positions whose windows can contain the pixel are visited.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let kk = p.kh * p.kw;
    let ckk = p.c * kk;
    // Padded coordinates: output oh reads rows oh·SH + kh·DH of the padded image.
    let th = ih + p.ph;
    let tw = iw + p.pw;
    let span_h = (p.kh - 1u) * p.dh;
    let span_w = (p.kw - 1u) * p.dw;
    let oh_lo = select(0u, (th - span_h + p.sh - 1u) / p.sh, th > span_h);
    let oh_hi = min(th / p.sh, p.oh - 1u);
    let ow_lo = select(0u, (tw - span_w + p.sw - 1u) / p.sw, tw > span_w);
    let ow_hi = min(tw / p.sw, p.ow - 1u);
    var acc = 0.0;
    for (var oh = oh_lo; oh <= oh_hi; oh++) {
        // Integer division is slow on CPU adapters: skip it without dilation.
        var kh = th - oh * p.sh;
        if (p.dh != 1u) {
            if (kh % p.dh != 0u) {
                continue;
            }
            kh = kh / p.dh;
        }
        let rowbase = (n * p.oh * p.ow + oh * p.ow) * ckk + c * kk + kh * p.kw;
        for (var ow = ow_lo; ow <= ow_hi; ow++) {
            var kw = tw - ow * p.sw;
            if (p.dw != 1u) {
                if (kw % p.dw != 0u) {
                    continue;
                }
                kw = kw / p.dw;
            }
            acc += x[rowbase + ow * ckk + kw];
        }
    }
    y[i] = acc;
}
