// Convolution as GEMM: im2col gathers the sliding windows of an NCHW image into rows,
//   cols[n, oh·OW + ow, (c·KH + kh)·KW + kw] = x[n, c, oh·SH + kh·DH - PH, ow·SW + kw·DW - PW]
// (zero outside the image), and col2im is its adjoint, summing every window element back
// onto the pixel it came from. Both are gathers: one invocation per output element, no atomics.

@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> y: array<elem>;
// col2im with an activation (ACT, activation.wgsl) multiplies by its slope at `side`, the
// activation's output: the gradient through the activation that produced the image.
@group(0) @binding(3) var<storage, read> side: array<elem>;

// One invocation per (image, output position, channel) writes that channel's KH·KW window.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let ohw = OH * OW;
    if (i >= p.n * ohw * WC) {
        return;
    }
    let c = i % WC;
    let row = i / WC;          // n · OH·OW + position
    let pos = row % ohw;
    let n = row / ohw;
    let top = i32((pos / OW) * SH) - i32(PH);
    let left = i32((pos % OW) * SW) - i32(PW);
    let plane = (n * WC + c) * WH;
    var out = (row * WC + c) * KH * KW;
    for (var kh = 0u; kh < KH; kh++) {
        let ih = top + i32(kh * DH);
        let inside_h = ih >= 0 && ih < i32(WH);
        let src = (plane + u32(max(ih, 0))) * WW;
        for (var kw = 0u; kw < KW; kw++) {
            let iw = left + i32(kw * DW);
            var v = 0.0;
            if (inside_h && iw >= 0 && iw < i32(WW)) {
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
    if (i >= p.n * WC * WH * WW) {
        return;
    }
    let iw = i % WW;
    let ih = (i / WW) % WH;
    let c = (i / (WW * WH)) % WC;
    let n = i / (WW * WH * WC);
    let kk = KH * KW;
    let ckk = WC * kk;
    // Padded coordinates: output oh reads rows oh·SH + kh·DH of the padded image.
    let th = ih + PH;
    let tw = iw + PW;
    let r = covering(ih, iw);
    var acc = 0.0;
    for (var oh = r.x; oh <= r.y; oh++) {
        // Integer division is slow on CPU adapters: skip it without dilation.
        var kh = th - oh * SH;
        if (DH != 1u) {
            if (kh % DH != 0u) {
                continue;
            }
            kh = kh / DH;
        }
        let rowbase = (n * OH * OW + oh * OW) * ckk + c * kk + kh * KW;
        for (var ow = r.z; ow <= r.w; ow++) {
            var kw = tw - ow * SW;
            if (DW != 1u) {
                if (kw % DW != 0u) {
                    continue;
                }
                kw = kw / DW;
            }
            acc += x[rowbase + ow * ckk + kw];
        }
    }
    if (ACT != 0u) {
        acc *= activation_slope(side[i]);
    }
    y[i] = acc;
}
