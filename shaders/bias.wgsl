// Per-channel bias with a fused activation, and its gradient's per-channel sum. The tensor is
// viewed as [outer, C, INNER] (C = the channel axis). C, INNER and the activation are
// pipeline constants, so the channel index of an element costs no integer division by a
// runtime value (which CPU adapters cannot vectorise). `activate` and ACT come from
// activation.wgsl.

override C: u32 = 1u;
override INNER: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> y: array<elem>;

// y = act(x + b[channel]), one invocation per element.
@compute @workgroup_size(256)
fn bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    y[i] = activate(x[i] + b[(i / INNER) % C]);
}

// y[c] = Σ over outer of x[·, c] when INNER = 1 (the bias gradient of a dense layer): one
// invocation per channel, neighbouring lanes reading neighbouring channels.
@compute @workgroup_size(64)
fn channel_sum_columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= C) {
        return;
    }
    var acc = 0.0;
    for (var i = c; i < p.n; i += C) {
        acc += x[i];
    }
    y[c] = acc;
}

// y[c] = Σ over outer and inner of x[·, c, ·]: one workgroup per channel, its lanes striding
// over the channel's elements, then combining their sums (lanes.wgsl).
@compute @workgroup_size(64)
fn channel_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lane: u32) {
    let c = workgroup_item(wid, nwg);
    if (c >= C) {
        return;
    }
    let count = p.n / C;  // elements per channel: outer · INNER
    var acc = 0.0;
    for (var t = lane; t < count; t += LANES) {
        let o = t / INNER;
        acc += x[(o * C + c) * INNER + t % INNER];
    }
    let total = combine(lane, acc, false);
    if (lane == 0u) {
        y[c] = total;
    }
}
