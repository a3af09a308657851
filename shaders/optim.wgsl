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
// The rules read their operands through load_g, load_w, load_s1 and load_s2, from storage
// buffers (optim_storage.wgsl) or, on CPU adapters, from texture copies of them
// (optim_texture.wgsl: lavapipe loads a vec4 from storage as four per-lane loops, 6× the cost
// of a texel fetch); they always write the storage buffers.
// Each invocation updates one vec4: parameters sit at 16-byte aligned offsets in whole vec4s
// (src/executor/arenas.rs), so the last vec4 of a range only reaches padding, whose gradient is 0.
//
// The numerics guard: each update runs twice. The check pass (p.check = 1) writes nothing but
// flags, in `guard`, a non-finite loss (run 0 looks at them), gradient or updated value; the
// apply pass then writes only when nothing was ever flagged (h.flagged: guard word 0, which
// the plan copies into the uniform between the passes, as it copies the clipping factor
// into h.clip before them). The flag stays until the host has
// read and reported it, so a bad step, and every step after it, changes no parameter.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<uniform> h: Hyper;
@group(0) @binding(3) var<storage, read_write> w: array<vec4<elem>>;
@group(0) @binding(4) var<storage, read_write> s1: array<vec4<elem>>;
@group(0) @binding(5) var<storage, read_write> s2: array<vec4<elem>>;
@group(0) @binding(7) var<storage, read> loss: array<elem>;
@group(0) @binding(8) var<storage, read_write> guard: array<atomic<u32>>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The regularised, clipped gradient of vec4 i, whose parameters are wi.
fn grad(i: u32, wi: vec4<f32>) -> vec4<f32> {
    return h.clip * load_g(i) + h.wd * wi;
}

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Whether the lanes of vec4 i that hold parameters (not padding) are finite.
fn finite4(i: u32, v: vec4<f32>) -> bool {
    let lanes = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
    let bad = (bitcast<vec4<u32>>(v) & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u);
    return !any(bad & (lanes < vec4<u32>(p.n)));
}

fn flag(bit: u32, word: u32, i: u32) {
    atomicOr(&guard[0], bit);
    atomicMin(&guard[1], h.step);
    atomicMin(&guard[word], i);
}

// Run at the top of every entry point, by every invocation: the check pass of run 0 looks
// at the per-sample losses.
fn check_loss(i: u32, nwg: vec3<u32>) {
    if (p.check == 0u || p.run != 0u) {
        return;
    }
    let stride = nwg.x * nwg.y * 256u;
    for (var j = i; j < p.loss_n; j += stride) {
        if (!finite(loss[j])) {
            atomicOr(&guard[0], GUARD_LOSS);
            atomicMin(&guard[1], h.step);
            return;
        }
    }
}

// In the check pass, records what is non-finite and returns true (write nothing); in the
// apply pass, true when anything was flagged.
fn hold(i: u32, gi: vec4<f32>, next_finite: bool) -> bool {
    if (p.check == 1u) {
        if (!finite4(i, gi)) {
            flag(GUARD_GRADIENT, GUARD_RUNS + 2u * p.run, i);
        } else if (!next_finite) {
            flag(GUARD_UPDATE, GUARD_RUNS + 2u * p.run + 1u, i);
        }
        return true;
    }
    return h.flagged != 0u;
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    let wn = wi - h.lr * gi;
    if (hold(i, gi, finite4(i, wn))) {
        return;
    }
    w[i] = wn;
}

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    let v = h.mu * load_s1(i) + gi;
    let wn = wi - h.lr * select(v, gi + h.mu * v, h.nesterov == 1u);
    if (hold(i, gi, finite4(i, v) && finite4(i, wn))) {
        return;
    }
    s1[i] = v;
    w[i] = wn;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    let m = h.mu * load_s1(i) + (1.0 - h.mu) * gi;
    let v = h.beta2 * load_s2(i) + (1.0 - h.beta2) * gi * gi;
    let wd = wi * (1.0 - h.lr * h.dwd);
    let wn = wd - h.lr * (m * h.c1) / (sqrt(v * h.c2) + h.eps);
    if (hold(i, gi, finite4(i, m) && finite4(i, v) && finite4(i, wn))) {
        return;
    }
    s1[i] = m;
    s2[i] = v;
    w[i] = wn;
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    let v = h.mu * load_s1(i) + (1.0 - h.mu) * gi * gi;
    let wn = wi - h.lr * gi / (sqrt(v) + h.eps);
    if (hold(i, gi, finite4(i, v) && finite4(i, wn))) {
        return;
    }
    s1[i] = v;
    w[i] = wn;
}

@compute @workgroup_size(256)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    let v = load_s1(i) + gi * gi;
    let wn = wi - h.lr * gi / (sqrt(v) + h.eps);
    if (hold(i, gi, finite4(i, v) && finite4(i, wn))) {
        return;
    }
    s1[i] = v;
    w[i] = wn;
}

@compute @workgroup_size(256)
fn fsadagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    check_loss(i, nwg);
    if (i >= (p.n + 3u) / 4u) {
        return;
    }
    let wi = load_w(i);
    let gi = grad(i, wi);
    // h.eps holds 1 - β2 here, computed on the host in f64.
    let v = h.beta2 * load_s1(i) + h.eps * gi * gi;
    let scale = select(vec4<f32>(1.0), min(h.c1 / sqrt(v), vec4<f32>(h.c2)), v != vec4<f32>(0.0));
    let m = h.mu * load_s2(i) + (1.0 - h.mu) * gi * scale;
    let wn = wi - h.lr * m;
    if (hold(i, gi, finite4(i, v) && finite4(i, m) && finite4(i, wn))) {
        return;
    }
    s1[i] = v;
    s2[i] = m;
    w[i] = wn;
}
