// Elementwise unary functions y = alpha * f(x), one invocation per element.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> y: array<elem>;

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
        case UNARY_NEG: { r = -v; }
        case UNARY_EXP: { r = exp(v); }
        case UNARY_LOG: { r = log(v); }
        case UNARY_SQRT: { r = sqrt(v); }
        case UNARY_ABS: { r = abs(v); }
        case UNARY_SIGN: { r = sign(v); }
        case UNARY_SIGMOID: { r = sigmoid(v); }
        // tanh(x) is exactly ±1 in f32 beyond |x| = 9; clamping avoids inf/inf in some drivers.
        case UNARY_TANH: { r = tanh(clamp(v, -15.0, 15.0)); }
        case UNARY_RELU: { r = max_nan(v, 0.0); }
        // softplus: max(v, 0) + ln(1 + e^-|v|) never overflows.
        case UNARY_SOFTPLUS: { r = max(v, 0.0) + log(1.0 + exp(-abs(v))); }
        default: { r = v; }  // UNARY_SCALE
    }
    y[i] = p.alpha * r;
}
