// Additive attention of queries q: [batch, Tq, A] over keys k: [batch, Tk, A] with the
// weight vector v: [A], and its gradients. Query step t of sequence b is valid for
// t < Lq[b], key step j for j < Lk[b] (lengths as floats holding whole numbers):
//   score[b, t, j] = Σ_a v[a]·tanh(q[b, t, a] + k[b, j, a])
//   α[b, t, :]     = softmax of the valid keys' scores, 0 at padding keys (all 0 when the
//                    sequence has no key) and on padding queries
//   out[b, t, :]   = Σ_j α[b, t, j]·values[b, j, :]
// The grad kernels compute, from dscore = ∂L/∂score, what reaches q, k and v. Every output
// at padding is zero; no kernel reads a padding step of a fed input.

@group(0) @binding(0) var<uniform> p: Params;
// attn_weights and the grad_q/k/v kernels: q, k, v (and dscore); the others: two operands.
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read> c: array<elem>;
@group(0) @binding(4) var<storage, read> d: array<elem>;
@group(0) @binding(5) var<storage, read> len_q: array<elem>;
@group(0) @binding(6) var<storage, read> len_k: array<elem>;
@group(0) @binding(7) var<storage, read_write> out: array<elem>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn lq(s: u32) -> u32 {
    return u32(len_q[s]);
}

fn lk(s: u32) -> u32 {
    return u32(len_k[s]);
}

// How many keys query row `row` (sequence row / Tq) attends to: its sequence's valid keys,
// none for a padding query.
fn keys_of(row: u32) -> u32 {
    let s = row / p.steps_q;
    return select(0u, lk(s), row % p.steps_q < lq(s));
}

// tanh(q + k) at feature f of query row `qr` and key row `kr` (rows of A floats).
fn th(qr: u32, kr: u32, f: u32) -> f32 {
    return tanh(a[qr * p.width + f] + b[kr * p.width + f]);
}

// One invocation per query row (s, t): writes the row's Tk weights.
@compute @workgroup_size(256)
fn attn_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = index(gid, nwg);
    if (row >= p.batch * p.steps_q) {
        return;
    }
    let s = row / p.steps_q;
    let keys = keys_of(row);
    let base = row * p.steps_k;
    var top = -3.4e38;
    for (var j = 0u; j < keys; j++) {
        var e = 0.0;
        for (var f = 0u; f < p.width; f++) {
            e += c[f] * th(row, s * p.steps_k + j, f);
        }
        out[base + j] = e;
        top = max(top, e);
    }
    var total = 0.0;
    for (var j = 0u; j < keys; j++) {
        let w = exp(out[base + j] - top);
        out[base + j] = w;
        total += w;
    }
    for (var j = 0u; j < p.steps_k; j++) {
        out[base + j] = select(0.0, out[base + j] / total, j < keys);
    }
}

// out[s, t, e] = Σ_j α[s, t, j]·values[s, j, e] (a = α, b = values, width E).
@compute @workgroup_size(256)
fn attn_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_q * p.width) {
        return;
    }
    let row = i / p.width;
    let s = row / p.steps_q;
    let keys = keys_of(row);
    var acc = 0.0;
    for (var j = 0u; j < keys; j++) {
        acc += a[row * p.steps_k + j] * b[(s * p.steps_k + j) * p.width + i % p.width];
    }
    out[i] = acc;
}

// dα[s, t, j] = Σ_e g[s, t, e]·values[s, j, e] (a = g, b = values, width E).
@compute @workgroup_size(256)
fn attn_apply_grad_alpha(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_q * p.steps_k) {
        return;
    }
    let row = i / p.steps_k;
    let j = i % p.steps_k;
    let s = row / p.steps_q;
    var acc = 0.0;
    if (row % p.steps_q < lq(s) && j < lk(s)) {
        for (var e = 0u; e < p.width; e++) {
            acc += a[row * p.width + e] * b[(s * p.steps_k + j) * p.width + e];
        }
    }
    out[i] = acc;
}

// dvalues[s, j, e] = Σ_t α[s, t, j]·g[s, t, e] (a = α, b = g, width E).
@compute @workgroup_size(256)
fn attn_apply_grad_values(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_k * p.width) {
        return;
    }
    let krow = i / p.width;
    let s = krow / p.steps_k;
    let j = krow % p.steps_k;
    var acc = 0.0;
    if (j < lk(s)) {
        for (var t = 0u; t < lq(s); t++) {
            let row = s * p.steps_q + t;
            acc += a[row * p.steps_k + j] * b[row * p.width + i % p.width];
        }
    }
    out[i] = acc;
}

// dscore[s, t, j] = α_j·(dα_j − Σ_i α_i·dα_i) over the row's valid keys (a = α, b = dα).
@compute @workgroup_size(256)
fn attn_score_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_q * p.steps_k) {
        return;
    }
    let row = i / p.steps_k;
    let j = i % p.steps_k;
    let s = row / p.steps_q;
    let keys = keys_of(row);
    var v = 0.0;
    if (j < keys) {
        var dot = 0.0;
        for (var m = 0u; m < keys; m++) {
            dot += a[row * p.steps_k + m] * b[row * p.steps_k + m];
        }
        v = a[i] * (b[i] - dot);
    }
    out[i] = v;
}

// dq[s, t, f] = Σ_j dscore[s, t, j]·v[f]·(1 − tanh²(q + k)) (d = dscore, width A).
@compute @workgroup_size(256)
fn attn_grad_q(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_q * p.width) {
        return;
    }
    let row = i / p.width;
    let f = i % p.width;
    let s = row / p.steps_q;
    let keys = keys_of(row);
    var acc = 0.0;
    for (var j = 0u; j < keys; j++) {
        let h = th(row, s * p.steps_k + j, f);
        acc += d[row * p.steps_k + j] * (1.0 - h * h);
    }
    out[i] = acc * c[f];
}

// dk[s, j, f] = Σ_t dscore[s, t, j]·v[f]·(1 − tanh²(q + k)) (d = dscore, width A).
@compute @workgroup_size(256)
fn attn_grad_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_k * p.width) {
        return;
    }
    let krow = i / p.width;
    let f = i % p.width;
    let s = krow / p.steps_k;
    let j = krow % p.steps_k;
    var acc = 0.0;
    if (j < lk(s)) {
        for (var t = 0u; t < lq(s); t++) {
            let row = s * p.steps_q + t;
            let h = th(row, krow, f);
            acc += d[row * p.steps_k + j] * (1.0 - h * h);
        }
    }
    out[i] = acc * c[f];
}

// Per query row: Σ_j dscore[s, t, j]·tanh(q + k)[f], summed over rows to dv (width A).
@compute @workgroup_size(256)
fn attn_grad_v(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.batch * p.steps_q * p.width) {
        return;
    }
    let row = i / p.width;
    let f = i % p.width;
    let s = row / p.steps_q;
    let keys = keys_of(row);
    var acc = 0.0;
    for (var j = 0u; j < keys; j++) {
        acc += d[row * p.steps_k + j] * th(row, s * p.steps_k + j, f);
    }
    out[i] = acc;
}
