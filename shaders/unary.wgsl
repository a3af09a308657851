// Elementwise unary functions y = alpha * f(x), one invocation per element.

struct Params {
    n: u32,
    op: u32,    // see UnaryOp in src/graph.rs
    alpha: f32,
    _p: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Logistic function that never overflows: exp is only taken of non-positive numbers.
fn sigmoid(v: f32) -> f32 {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    var r: f32;
    switch p.op {
        case 0u: { r = -v; }
        case 1u: { r = exp(v); }
        case 2u: { r = log(v); }
        case 3u: { r = sqrt(v); }
        case 4u: { r = abs(v); }
        case 5u: { r = sign(v); }
        case 6u: { r = sigmoid(v); }
        // tanh(x) is exactly ±1 in f32 beyond |x| = 9; clamping avoids inf/inf in some drivers.
        case 7u: { r = tanh(clamp(v, -15.0, 15.0)); }
        case 8u: { r = max(v, 0.0); }
        // softplus: max(v, 0) + ln(1 + e^-|v|) never overflows.
        case 9u: { r = max(v, 0.0) + log(1.0 + exp(-abs(v))); }
        default: { r = v; }
    }
    y[i] = p.alpha * r;
}
