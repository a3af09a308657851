// Cooperation across the 64 lanes of a workgroup (prepended to reduce.wgsl, softmax.wgsl
// and bias.wgsl).

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
            partial[lane] = select(a + b, max(a, b), is_max);
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

