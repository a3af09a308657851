// Parameter updates, in place, from the minibatch-mean gradient. Every rule first forms
//   g' = s·g + wd·w        (s: the global-norm clipping factor, 1 without clipping;
//                           wd: L2 regularisation added to the gradient)
// and AdamW's decoupled decay shrinks w by lr·dwd before its step.
//   sgd:          w -= lr·g'
//   sgd_momentum: v = μ·v + g';  w -= lr·v   (Nesterov: w -= lr·(g' + μ·v))   (PyTorch's form)
//   adam:         m = β1·m + (1-β1)·g';  v = β2·v + (1-β2)·g'²;  w -= lr·(m·c1) / (√(v·c2) + ε)
//   rmsprop:      v = ρ·v + (1-ρ)·g'²;  w -= lr·g' / (√v + ε)
//   adagrad:      v += g'²;  w -= lr·g' / (√v + ε)
//   fsadagrad:    v = β2·v + (1-β2)·g'² (1-β2 given as eps);  g'' = g'·min(c1 / √v, c2) (g' where v = 0);
//                 m = μ·m + (1-μ)·g'';  w -= lr·m   (CNTK's FSAdaGrad, src/optim/mod.rs)
// The hyper-parameters live in a uniform rewritten each step (schedules, bias corrections).
// Each invocation updates one vec4: parameters sit at 16-byte aligned offsets in whole vec4s
// (src/executor/arenas.rs), so the last vec4 of a range only reaches padding, whose gradient is 0.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<vec4<elem>>;
@group(0) @binding(2) var<uniform> h: Hyper;
@group(0) @binding(3) var<storage, read_write> w: array<vec4<elem>>;
@group(0) @binding(4) var<storage, read_write> s1: array<vec4<elem>>;
@group(0) @binding(5) var<storage, read_write> s2: array<vec4<elem>>;
@group(0) @binding(6) var<storage, read> clip: array<elem>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The regularised, clipped gradient of vec4 i.
fn grad(i: u32) -> vec4<f32> {
    return clip[0] * g[i] + h.wd * w[i];
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    w[i] = w[i] - h.lr * grad(i);
}

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let gi = grad(i);
    let v = h.mu * s1[i] + gi;
    s1[i] = v;
    w[i] = w[i] - h.lr * select(v, gi + h.mu * v, h.nesterov == 1u);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let gi = grad(i);
    let m = h.mu * s1[i] + (1.0 - h.mu) * gi;
    let v = h.beta2 * s2[i] + (1.0 - h.beta2) * gi * gi;
    s1[i] = m;
    s2[i] = v;
    let wi = w[i] * (1.0 - h.lr * h.dwd);
    w[i] = wi - h.lr * (m * h.c1) / (sqrt(v * h.c2) + h.eps);
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let gi = grad(i);
    let v = h.mu * s1[i] + (1.0 - h.mu) * gi * gi;
    s1[i] = v;
    w[i] = w[i] - h.lr * gi / (sqrt(v) + h.eps);
}

@compute @workgroup_size(256)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let gi = grad(i);
    let v = s1[i] + gi * gi;
    s1[i] = v;
    w[i] = w[i] - h.lr * gi / (sqrt(v) + h.eps);
}

@compute @workgroup_size(256)
fn fsadagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let gi = grad(i);
    // h.eps holds 1 - β2 here, computed on the host in f64.
    let v = h.beta2 * s1[i] + h.eps * gi * gi;
    s1[i] = v;
    let scale = select(vec4<f32>(1.0), min(h.c1 / sqrt(v), vec4<f32>(h.c2)), v != vec4<f32>(0.0));
    let m = h.mu * s2[i] + (1.0 - h.mu) * gi * scale;
    s2[i] = m;
    w[i] = w[i] - h.lr * m;
}
