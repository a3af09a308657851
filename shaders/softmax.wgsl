// Softmax or log-softmax along one axis, numerically stable (the row maximum is subtracted).
// The input is viewed as [outer, len, inner]; one invocation per (outer, inner) row.

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
    var m = x[base];
    for (var j = 1u; j < p.len; j++) {
        m = max(m, x[base + j * p.inner]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.len; j++) {
        s += exp(x[base + j * p.inner] - m);
    }
    let lse = m + log(s);
    for (var j = 0u; j < p.len; j++) {
        let k = base + j * p.inner;
        if (p.log == 1u) {
            y[k] = x[k] - lse;
        } else {
            y[k] = exp(x[k] - lse);
        }
    }
}

// The same with one workgroup per row, for long rows: the row's maximum and its sum of
// exponentials are each combined across the lanes (lanes.wgsl).

@compute @workgroup_size(64)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lane: u32) {
    let i = workgroup_item(wid, nwg);
    if (i >= p.outer * p.inner) {
        return;
    }
    let base = row_start(i, p.len, p.inner);
    var m = x[base];
    for (var j = lane; j < p.len; j += LANES) {
        m = max(m, x[base + j * p.inner]);
    }
    m = combine(lane, m, true);
    var s = 0.0;
    for (var j = lane; j < p.len; j += LANES) {
        s += exp(x[base + j * p.inner] - m);
    }
    let lse = m + log(combine(lane, s, false));
    for (var j = lane; j < p.len; j += LANES) {
        let k = base + j * p.inner;
        if (p.log == 1u) {
            y[k] = x[k] - lse;
        } else {
            y[k] = exp(x[k] - lse);
        }
    }
}
