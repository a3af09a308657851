// Max and average pooling over NCHW images, and their gradients as gathers: each input pixel
// sums the gradient of every window that contains it (for max pooling, only the windows whose
// first maximum it is). Average pooling divides by the number of in-image elements.
// Windows that tile the image take a faster path (backward_tiles).

@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> g: array<elem>;
@group(0) @binding(3) var<storage, read_write> y: array<elem>;
// The gradients with an activation (ACT, activation.wgsl) multiply by its slope at `side`,
// the activation's output: the gradient through the activation that produced the image.
@group(0) @binding(4) var<storage, read> side: array<elem>;

fn through_activation(v: f32, i: u32) -> f32 {
    if (ACT != 0u) {
        return v * activation_slope(side[i]);
    }
    return v;
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
    for (var kh = 0u; kh < KH; kh++) {
        let ih = i32(oh * SH + kh * DH) - i32(PH);
        if (ih < 0 || ih >= i32(WH)) {
            continue;
        }
        for (var kw = 0u; kw < KW; kw++) {
            let iw = i32(ow * SW + kw * DW) - i32(PW);
            if (iw < 0 || iw >= i32(WW)) {
                continue;
            }
            let at = (plane * WH + u32(ih)) * WW + u32(iw);
            let v = x[at];
            r.count += 1.0;
            if (max_pool) {
                if (v > r.value || r.count == 1.0 || (is_nan(v) && !is_nan(r.value))) {
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
    let ohw = OH * OW;
    if (i >= p.n * WC * ohw) {
        return;
    }
    let r = scan(i / ohw, (i % ohw) / OW, i % OW, max_pool);
    y[i] = select(r.value / max(r.count, 1.0), r.value, max_pool);
}

fn backward(i: u32, max_pool: bool) {
    if (i >= p.n * WC * WH * WW) {
        return;
    }
    let iw = i % WW;
    let ih = (i / WW) % WH;
    let plane = i / (WW * WH);
    // Only the windows that can contain this pixel.
    let th = ih + PH;
    let tw = iw + PW;
    let r = covering(ih, iw);
    var acc = 0.0;
    for (var oh = r.x; oh <= r.y; oh++) {
        if (DH != 1u && (th - oh * SH) % DH != 0u) {
            continue;
        }
        for (var ow = r.z; ow <= r.w; ow++) {
            if (DW != 1u && (tw - ow * SW) % DW != 0u) {
                continue;
            }
            let go = g[(plane * OH + oh) * OW + ow];
            if (max_pool) {
                if (scan(plane, oh, ow, true).arg == i) {
                    acc += go;
                }
            } else {
                acc += go / scan(plane, oh, ow, false).count;
            }
        }
    }
    y[i] = through_activation(acc, i);
}

// When the windows tile the image (stride = kernel, no padding or dilation), one invocation
// per tile scans its window once and writes the gradient of every pixel in it, instead of
// each pixel rescanning its window; the tiles past the last window (a remainder of rows or
// columns) write zeros.
fn backward_tiles(i: u32, max_pool: bool) {
    let tiles_h = (WH + KH - 1u) / KH;
    let tiles_w = (WW + KW - 1u) / KW;
    if (i >= p.n * WC * tiles_h * tiles_w) {
        return;
    }
    let tw = i % tiles_w;
    let th = (i / tiles_w) % tiles_h;
    let plane = i / (tiles_w * tiles_h);
    var go = 0.0;
    var r = Window(0.0, 1.0, OUTSIDE);
    if (th < OH && tw < OW) {
        go = g[(plane * OH + th) * OW + tw];
        r = scan(plane, th, tw, max_pool);
    }
    for (var kh = 0u; kh < KH; kh++) {
        let ih = th * KH + kh;
        for (var kw = 0u; kw < KW; kw++) {
            let iw = tw * KW + kw;
            if (ih < WH && iw < WW) {
                let at = (plane * WH + ih) * WW + iw;
                let v = select(go / r.count, select(0.0, go, at == r.arg), max_pool);
                y[at] = through_activation(v, at);
            }
        }
    }
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

@compute @workgroup_size(256)
fn max_backward_tiles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles(index(gid, nwg), true);
}

@compute @workgroup_size(256)
fn avg_backward_tiles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles(index(gid, nwg), false);
}
