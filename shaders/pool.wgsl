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
    var acc = 0.0;
    for (var kh = 0u; kh < p.kh; kh++) {
        let th = i32(ih + p.ph) - i32(kh * p.dh);
        if (th < 0 || u32(th) % p.sh != 0u || u32(th) / p.sh >= p.oh) {
            continue;
        }
        let oh = u32(th) / p.sh;
        for (var kw = 0u; kw < p.kw; kw++) {
            let tw = i32(iw + p.pw) - i32(kw * p.dw);
            if (tw < 0 || u32(tw) % p.sw != 0u || u32(tw) / p.sw >= p.ow) {
                continue;
            }
            let ow = u32(tw) / p.sw;
            let r = scan(plane, oh, ow, max_pool);
            let go = g[(plane * p.oh + oh) * p.ow + ow];
            if (max_pool) {
                if (r.arg == i) {
                    acc += go;
                }
            } else {
                acc += go / r.count;
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
