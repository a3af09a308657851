// Cooperation across the 64 lanes of a workgroup, and row addressing (prepended to
// reduce.wgsl, softmax.wgsl and bias.wgsl).

const LANES: u32 = 64u;
var<workgroup> partial: array<f32, LANES>;

// Combines every lane's `v` by max (or sum) with a tree in workgroup memory and returns the
// result to every lane. Call from uniform control flow, with all 64 lanes.
fn combine(lane: u32, v: f32, is_max: bool) -> f32 {
    partial[lane] = v;
    workgroupBarrier();
    for (var half = LANES / 2u; half > 0u; half /= 2u) {
        if (lane < half) {
            let a = partial[lane];
            let b = partial[lane + half];
            partial[lane] = select(a + b, max_nan(a, b), is_max);
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

// The item (output, row or channel) a workgroup works on when each works on one; uniform
// across the workgroup.
fn workgroup_item(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Where row i of an [outer, len, inner] tensor (along its middle axis) starts; its elements
// are `inner` apart.
fn row_start(i: u32, len: u32, inner: u32) -> u32 {
    return (i / inner) * len * inner + i % inner;
}
