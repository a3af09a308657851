// Losses and metrics over rows of class scores z[rows, classes] with targets t[rows, classes].
//   ce_forward:  loss[r] = sum_j t_j * (logsumexp(z) - z_j)      (cross-entropy with softmax)
//   ce_backward: dz[r, j] = g[r] * (softmax(z)_j * sum_k t_k - t_j)
//                (g[0] · g_scale for every row when g_scalar is set: the gradient of a mean)
//   class_error: err[r] = 1 if argmax(z) != argmax(t) else 0    (first maximum wins)
//   ce_forward_error: both, in one pass

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<elem>;
@group(0) @binding(2) var<storage, read> t: array<elem>;
@group(0) @binding(3) var<storage, read> g: array<elem>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;

fn logsumexp(base: u32) -> f32 {
    var m = z[base];
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, z[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s += exp(z[base + j] - m);
    }
    return m + log(s);
}

fn cross_entropy(base: u32) -> f32 {
    let lse = logsumexp(base);
    var loss = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        loss += t[base + j] * (lse - z[base + j]);
    }
    return loss;
}

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn ce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_index(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    out[r] = cross_entropy(r * p.classes);
}

@compute @workgroup_size(256)
fn ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_index(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.classes;
    let lse = logsumexp(base);
    var tsum = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        tsum += t[base + j];
    }
    let gr = g[select(r, 0u, p.g_scalar == 1u)] * p.g_scale;
    for (var j = 0u; j < p.classes; j++) {
        out[base + j] = gr * (exp(z[base + j] - lse) * tsum - t[base + j]);
    }
}

// 1 where the row's first maximum score is not at its first maximum target, else 0.
fn wrong(base: u32) -> f32 {
    var bz = 0u;
    var bt = 0u;
    for (var j = 1u; j < p.classes; j++) {
        if (z[base + j] > z[base + bz]) {
            bz = j;
        }
        if (t[base + j] > t[base + bt]) {
            bt = j;
        }
    }
    return select(0.0, 1.0, bz != bt);
}

@compute @workgroup_size(256)
fn class_error(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_index(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    out[r] = wrong(r * p.classes);
}

// ce_forward and class_error of the same scores and targets in one pass (a trainer's loss
// and metric): the error goes to `err`.
@group(0) @binding(5) var<storage, read_write> err: array<elem>;

@compute @workgroup_size(256)
fn ce_forward_error(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_index(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    out[r] = cross_entropy(r * p.classes);
    err[r] = wrong(r * p.classes);
}
