// Parameter updates, in place, from the minibatch-mean gradient g.
//   sgd:          p -= lr * (g + wd * p)
//   sgd_momentum: v = mu * v + (g + wd * p);  p -= lr * v        (PyTorch's convention)
// The hyper-parameters live in a uniform written once per step, so schedules cost no re-plan.

struct Params {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

struct Hyper {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    _p: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<uniform> h: Hyper;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    w[i] = w[i] - h.lr * (g[i] + h.weight_decay * w[i]);
}

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let vi = h.momentum * v[i] + g[i] + h.weight_decay * w[i];
    v[i] = vi;
    w[i] = w[i] - h.lr * vi;
}
