// Data movement along one axis. Tensors are viewed as [outer, len, inner] around the axis.
//   concat: out = a ++ b along the axis          slice: out = x[begin .. begin + len_out]
//   pad:    out = zeros with x placed at begin   one_hot: out[r, c] = (x[r] == c)
//   gather_rows:  out[n, d] = table[idx[n], d]    scatter_rows: out[r, d] = Σ_{idx[n] = r} g[n, d]
//   (scatter_rows sums runs of indices into copies of the table; scatter_rows_sum adds them)
// (rows: outer = indices, len_a = table rows, inner = row length)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> out: array<elem>;

// Splits the flat output index into (outer, position along the axis, inner) or returns
// false when past the end.
fn split(gid: vec3<u32>, nwg: vec3<u32>) -> vec4<u32> {
    let i = gid.x + gid.y * nwg.x * 256u;
    let valid = u32(i < p.outer * p.len_out * p.inner);
    return vec4<u32>(i / (p.len_out * p.inner), (i / p.inner) % p.len_out, i % p.inner, valid);
}

@compute @workgroup_size(256)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = split(gid, nwg);
    if (s.w == 0u) {
        return;
    }
    let i = (s.x * p.len_out + s.y) * p.inner + s.z;
    if (s.y < p.len_a) {
        out[i] = a[(s.x * p.len_a + s.y) * p.inner + s.z];
    } else {
        let len_b = p.len_out - p.len_a;
        out[i] = b[(s.x * len_b + s.y - p.len_a) * p.inner + s.z];
    }
}

@compute @workgroup_size(256)
fn slice(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = split(gid, nwg);
    if (s.w == 0u) {
        return;
    }
    out[(s.x * p.len_out + s.y) * p.inner + s.z] = a[(s.x * p.len_a + s.y + p.begin) * p.inner + s.z];
}

@compute @workgroup_size(256)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = split(gid, nwg);
    if (s.w == 0u) {
        return;
    }
    var v = 0.0;
    if (s.y >= p.begin && s.y < p.begin + p.len_a) {
        v = a[(s.x * p.len_a + s.y - p.begin) * p.inner + s.z];
    }
    out[(s.x * p.len_out + s.y) * p.inner + s.z] = v;
}

// one_hot uses outer = rows, len_out = classes, inner = 1.
@compute @workgroup_size(256)
fn one_hot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = split(gid, nwg);
    if (s.w == 0u) {
        return;
    }
    out[s.x * p.len_out + s.y] = select(0.0, 1.0, u32(round(a[s.x])) == s.y && a[s.x] >= 0.0);
}

// The row an index stored as a float names, or len_a when it names none.
fn row_of(v: f32) -> u32 {
    let r = u32(round(max(v, 0.0)));
    return select(p.len_a, r, v >= 0.0 && r < p.len_a);
}

// a: the table, b: the indices.
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.outer * p.inner) {
        return;
    }
    let r = row_of(b[i / p.inner]);
    var v = 0.0;
    if (r < p.len_a) {
        v = a[r * p.inner + i % p.inner];
    }
    out[i] = v;
}

// a: the indices, b: the incoming gradient rows. The indices come in p.len_out runs of
// p.begin; invocation (run, element d of a row) adds the run's rows, in order, into its
// run's copy of column d of the table (out is [runs, rows, inner], zeroed before):
// deterministic, no atomics. With one run, out is the table gradient itself.
@compute @workgroup_size(256)
fn scatter_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= p.len_out * p.inner) {
        return;
    }
    let run = e / p.inner;
    let base = run * p.len_a * p.inner + e % p.inner;
    let end = min((run + 1u) * p.begin, p.outer);
    for (var n = run * p.begin; n < end; n++) {
        let r = row_of(a[n]);
        if (r < p.len_a) {
            let o = base + r * p.inner;
            out[o] = out[o] + b[n * p.inner + e % p.inner];
        }
    }
}

// a: the runs' copies of the table gradient ([runs, rows, inner], runs = p.len_out); one
// invocation per table element sums its copies in order.
@compute @workgroup_size(256)
fn scatter_rows_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = p.len_a * p.inner;
    if (i >= n) {
        return;
    }
    var acc = 0.0;
    for (var run = 0u; run < p.len_out; run++) {
        acc += a[run * n + i];
    }
    out[i] = acc;
}
