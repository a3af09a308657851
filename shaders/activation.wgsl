// Activation functions chosen by a pipeline constant, shared by the kernels that fuse an
// activation into their output (prepended to bias.wgsl, conv.wgsl, pool.wgsl, matmul.wgsl
// and matmul_subgroup.wgsl).

override ACT: u32 = ACT_NONE;

fn activate(v: f32) -> f32 {
    switch ACT {
        case ACT_RELU: { return max_nan(v, 0.0); }
        case ACT_SIGMOID: {
            // Never overflows: exp is only taken of non-positive numbers.
            let e = exp(-abs(v));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
        }
        case ACT_TANH: { return tanh(v); }
        default: { return v; }
    }
}

// The activation's derivative, from its output y (relu: from its input works as well).
fn activation_slope(y: f32) -> f32 {
    switch ACT {
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_SIGMOID: { return y * (1.0 - y); }
        case ACT_TANH: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}

