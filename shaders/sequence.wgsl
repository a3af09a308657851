// Sequence ops over [batch, steps, inner] tensors padded to the longest sequence: each
// sequence's length comes from `lengths` (floats holding whole numbers), and nothing reads a
// padding step. Outputs at padding steps are zero.
//   seq_pick:      out[b, i] = x[b, L_b - 1, i] (LAST) or x[b, 0, i]
//   seq_place:     out[b, t, i] = g[b, i] at that step, else 0 (seq_pick's adjoint)
//   seq_reduce:    out[b, i] = Σ (or max, MAX) over t < L_b of x[b, t, i]
//   seq_broadcast: out[b, t, i] = v[b, i] for t < L_b
//   seq_shift:     out[b, t, i] = x[b, t - 1, i] (past; init at t = 0) or x[b, t + 1, i]
//                  (FUTURE; init at t = L_b - 1)
//   seq_mask:      out[b, t] = 1 for the valid t in BEGIN..END (negative: from L_b; END 0:
//                  to L_b)
//   seq_where:     out[b, j] = the j-th t < L_b with a[b, t] != 0, 0 past their count; with
//                  COUNT out[b] = their count
//   seq_gather:    out[b, j, i] = a[b, idx[b, j], i] for j < L_b (L the indices' lengths)
//   seq_scatter:   out[b, t, i] = Σ over j < L_b with idx[b, j] = t of a[b, j, i]
// Sequences of derived axes (where, gather) may be empty: ops then read none of their steps.

override LAST: bool = true;
override MAX: bool = false;
override FUTURE: bool = false;
override BEGIN: i32 = 0;
override END: i32 = 0;
override COUNT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> lengths: array<elem>;
// seq_shift: the initial state; seq_gather, seq_scatter: the step indices.
@group(0) @binding(3) var<storage, read> init: array<elem>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn len_of(b: u32) -> u32 {
    return u32(lengths[b]);
}

// The step seq_pick reads and seq_place writes for sequence b.
fn picked(b: u32) -> u32 {
    return select(0u, len_of(b) - 1u, LAST);
}

@compute @workgroup_size(256)
fn seq_pick(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    let b = i / p.inner;
    var v = 0.0;
    if (len_of(b) > 0u) {
        v = a[(b * p.steps + picked(b)) * p.inner + i % p.inner];
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn seq_place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps * p.inner) {
        return;
    }
    let b = i / (p.steps * p.inner);
    let t = (i / p.inner) % p.steps;
    out[i] = select(0.0, a[b * p.inner + i % p.inner], len_of(b) > 0u && t == picked(b));
}

@compute @workgroup_size(256)
fn seq_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.inner) {
        return;
    }
    let b = i / p.inner;
    let base = b * p.steps * p.inner + i % p.inner;
    var acc = select(0.0, a[base], MAX && len_of(b) > 0u);
    for (var t = 0u; t < len_of(b); t++) {
        let v = a[base + t * p.inner];
        acc = select(acc + v, max_nan(acc, v), MAX);
    }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn seq_broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps * p.inner) {
        return;
    }
    let b = i / (p.steps * p.inner);
    let t = (i / p.inner) % p.steps;
    out[i] = select(0.0, a[b * p.inner + i % p.inner], t < len_of(b));
}

@compute @workgroup_size(256)
fn seq_shift(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps * p.inner) {
        return;
    }
    let b = i / (p.steps * p.inner);
    let t = (i / p.inner) % p.steps;
    let l = len_of(b);
    var v = 0.0;
    if (t < l) {
        let edge = select(t == 0u, t + 1u == l, FUTURE);
        if (edge) {
            v = init[b * p.inner + i % p.inner];
        } else {
            v = a[select(i - p.inner, i + p.inner, FUTURE)];
        }
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn seq_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps) {
        return;
    }
    let l = i32(len_of(i / p.steps));
    let begin = select(min(BEGIN, l), max(l + BEGIN, 0), BEGIN < 0);
    let end = select(min(END, l), max(l + END, 0), END <= 0);
    let t = i32(i % p.steps);
    out[i] = select(0.0, 1.0, t >= begin && t < end);
}

@compute @workgroup_size(256)
fn seq_where(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let per = select(p.steps, 1u, COUNT);
    if (i >= p.batch * per) {
        return;
    }
    let b = i / per;
    let j = i % per;
    var seen = 0u;
    var found = 0u;
    for (var t = 0u; t < len_of(b); t++) {
        if (a[b * p.steps + t] != 0.0) {
            if (seen == j) {
                found = t;
            }
            seen++;
        }
    }
    out[i] = select(f32(select(0u, found, j < seen)), f32(seen), COUNT);
}

@compute @workgroup_size(256)
fn seq_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps * p.inner) {
        return;
    }
    let b = i / (p.steps * p.inner);
    let j = (i / p.inner) % p.steps;
    var v = 0.0;
    if (j < len_of(b)) {
        let t = u32(init[b * p.steps + j]);
        v = a[(b * p.steps + t) * p.inner + i % p.inner];
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn seq_scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps * p.inner) {
        return;
    }
    let b = i / (p.steps * p.inner);
    let t = (i / p.inner) % p.steps;
    var acc = 0.0;
    for (var j = 0u; j < len_of(b); j++) {
        if (u32(init[b * p.steps + j]) == t) {
            acc += a[(b * p.steps + j) * p.inner + i % p.inner];
        }
    }
    out[i] = acc;
}
