// A general scan's per-step reads and writes (Op::Scan, plan/scan.rs). Step values are
// [batch, inner]; sequences [batch, steps, width], a step value at float `offset` of a step.
// At iteration `step` (counted down from the last when `reverse`) the position is k, and
// sequence b (of length L_b) is at a step when k < L_b: step k, or L_b - 1 - k when
// `backwards`. A sequence whose steps are over reads zeros, keeps its carries, and records
// zeros at padding step k, so every step of every recorded sequence is written once.
//   scan_pick:   carry[b, i] = src[b, t, offset + i], or 0
//   scan_commit: carry[b, i] = src[b, i] and out[b, t, offset + i] = src[b, i] where at a
//                step; else out[b, k, offset + i] = 0
//   scan_hold:   carry[b, i] = src[b, i] where at a step
//   scan_emit:   out as scan_commit, no carry

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lengths: array<elem>;
@group(0) @binding(2) var<storage, read> src: array<elem>;
@group(0) @binding(3) var<storage, read_write> carry: array<elem>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The iteration's position.
fn position() -> u32 {
    return select(p.step, p.steps - 1u - p.step, p.reverse == 1u);
}

fn len_of(b: u32) -> u32 {
    return u32(lengths[b]);
}

// Sequence b's step at position k (only where k < L_b).
fn step_of(b: u32, k: u32) -> u32 {
    return select(k, len_of(b) - 1u - k, p.backwards == 1u);
}

// Where value i of sequence b is recorded at position k: its step, or padding step k.
fn recorded_at(b: u32, k: u32, i: u32) -> u32 {
    let t = select(k, step_of(b, k), k < len_of(b));
    return (b * p.steps + t) * p.width + p.offset + i;
}

@compute @workgroup_size(256)
fn scan_pick(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    let b = i / p.inner;
    let k = position();
    var v = 0.0;
    if (k < len_of(b)) {
        v = src[(b * p.steps + step_of(b, k)) * p.width + p.offset + i % p.inner];
    }
    carry[i] = v;
}

// Whether step value i's sequence is at a step at this iteration.
fn at_step(i: u32) -> bool {
    return position() < len_of(i / p.inner);
}

// Where step value i is recorded at this iteration.
fn recorded(i: u32) -> u32 {
    return recorded_at(i / p.inner, position(), i % p.inner);
}

@compute @workgroup_size(256)
fn scan_commit(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    let v = select(0.0, src[i], at_step(i));
    if (at_step(i)) {
        carry[i] = v;
    }
    out[recorded(i)] = v;
}

@compute @workgroup_size(256)
fn scan_hold(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    if (at_step(i)) {
        carry[i] = src[i];
    }
}

@compute @workgroup_size(256)
fn scan_emit(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    out[recorded(i)] = select(0.0, src[i], at_step(i));
}
