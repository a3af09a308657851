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

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let kk = p.kh * p.kw;
    let ckk = p.c * kk;
    let ohw = p.oh * p.ow;
    if (i >= p.n * ohw * ckk) {
        return;
    }
    let q = i % ckk;
    let row = i / ckk;
    let pos = row % ohw;
    let n = row / ohw;
    let c = q / kk;
    let kh = (q % kk) / p.kw;
    let kw = q % p.kw;
    let ih = i32((pos / p.ow) * p.sh + kh * p.dh) - i32(p.ph);
    let iw = i32((pos % p.ow) * p.sw + kw * p.dw) - i32(p.pw);
    var v = 0.0;
    if (ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w)) {
        v = x[((n * p.c + c) * p.h + u32(ih)) * p.w + u32(iw)];
    }
    y[i] = v;
}

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
            acc += x[(n * p.oh * p.ow + oh * p.ow + ow) * ckk + c * kk + kh * p.kw + kw];
        }
    }
    y[i] = acc;
}
