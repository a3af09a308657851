// Max and average pooling over NCHW images, and their gradients as gathers: each input pixel
// sums the gradient of every window that contains it (for max pooling, only the windows whose
// first maximum it is). Average pooling divides by the number of in-image elements.

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
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The window of output (oh, ow) on image plane `plane`: its max (or sum), its count of
// in-image elements, and the flat input index of its first maximum.
struct Window {
    value: f32,
    count: f32,
    arg: u32,
}

fn scan(plane: u32, oh: u32, ow: u32, max_pool: bool) -> Window {
    var r = Window(select(0.0, -3.4e38, max_pool), 0.0, 0u);
    for (var kh = 0u; kh < p.kh; kh++) {
        let ih = i32(oh * p.sh + kh * p.dh) - i32(p.ph);
        if (ih < 0 || ih >= i32(p.h)) {
            continue;
        }
        for (var kw = 0u; kw < p.kw; kw++) {
            let iw = i32(ow * p.sw + kw * p.dw) - i32(p.pw);
            if (iw < 0 || iw >= i32(p.w)) {
                continue;
            }
            let at = (plane * p.h + u32(ih)) * p.w + u32(iw);
            let v = x[at];
            r.count += 1.0;
            if (max_pool) {
                if (v > r.value || r.count == 1.0) {
                    r.value = v;
                    r.arg = at;
                }
            } else {
                r.value += v;
            }
        }
    }
    return r;
}

fn forward(i: u32, max_pool: bool) {
    let ohw = p.oh * p.ow;
    if (i >= p.n * p.c * ohw) {
        return;
    }
    let r = scan(i / ohw, (i % ohw) / p.ow, i % p.ow, max_pool);
    y[i] = select(r.value / max(r.count, 1.0), r.value, max_pool);
}

fn backward(i: u32, max_pool: bool) {
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    // Only the windows that can contain this pixel: output rows oh with
    // oh·SH ≤ ih + PH ≤ oh·SH + (KH-1)·DH, found with two divisions instead of a loop of them
    // (integer division is slow on CPU adapters).
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
        if (p.dh != 1u && (th - oh * p.sh) % p.dh != 0u) {
            continue;
        }
        for (var ow = ow_lo; ow <= ow_hi; ow++) {
            if (p.dw != 1u && (tw - ow * p.sw) % p.dw != 0u) {
                continue;
            }
            let go = g[(plane * p.oh + oh) * p.ow + ow];
            if (max_pool) {
                if (scan(plane, oh, ow, true).arg == i) {
                    acc += go;
                }
            } else {
                acc += go / scan(plane, oh, ow, false).count;
            }
        }
    }
    y[i] = acc;
}

@compute @workgroup_size(256)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward(index(gid, nwg), true);
}

@compute @workgroup_size(256)
fn avg_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward(index(gid, nwg), false);
}

@compute @workgroup_size(256)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward(index(gid, nwg), true);
}

@compute @workgroup_size(256)
fn avg_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward(index(gid, nwg), false);
}
