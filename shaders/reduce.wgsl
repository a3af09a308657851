// Reduction over one axis. The input is viewed as [outer, len, inner] (len = the reduced axis);
// the output is [outer, inner]. One invocation per output element.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> y: array<elem>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.outer * p.inner) {
        return;
    }
    let base = row_start(i, p.len, p.inner);
    var acc: f32;
    if (p.op == REDUCE_MAX) {
        acc = x[base];
        for (var j = 1u; j < p.len; j++) {
            acc = max_nan(acc, x[base + j * p.inner]);
        }
    } else if (p.op == REDUCE_MIN) {
        acc = x[base];
        for (var j = 1u; j < p.len; j++) {
            acc = min_nan(acc, x[base + j * p.inner]);
        }
    } else if (p.op == REDUCE_ARGMAX) {
        // The first index of the maximum (NaN never wins).
        var best = x[base];
        acc = 0.0;
        for (var j = 1u; j < p.len; j++) {
            let v = x[base + j * p.inner];
            if (v > best) {
                best = v;
                acc = f32(j);
            }
        }
    } else {
        acc = 0.0;
        for (var j = 0u; j < p.len; j++) {
            acc += x[base + j * p.inner];
        }
        if (p.op == REDUCE_MEAN) {
            acc = acc / f32(p.len);
        }
    }
    y[i] = acc;
}

// The same reduction with one workgroup per output element, for long axes with few outputs:
// the lanes stride over the axis, then combine their partial results (lanes.wgsl). Min is
// the max of the negated values; argmax always runs the kernel above.

@compute @workgroup_size(64)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lane: u32) {
    let i = workgroup_item(wid, nwg);
    if (i >= p.outer * p.inner) {
        return;
    }
    let base = row_start(i, p.len, p.inner);
    let is_max = p.op == REDUCE_MAX || p.op == REDUCE_MIN;
    let sign = select(1.0, -1.0, p.op == REDUCE_MIN);
    var acc = select(0.0, sign * x[base], is_max);
    for (var j = lane; j < p.len; j += LANES) {
        let v = sign * x[base + j * p.inner];
        acc = select(acc + v, max_nan(acc, v), is_max);
    }
    var r = sign * combine(lane, acc, is_max);
    if (lane == 0u) {
        if (p.op == REDUCE_MEAN) {
            r = r / f32(p.len);
        }
        y[i] = r;
    }
}
