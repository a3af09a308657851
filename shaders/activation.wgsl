// Activation functions chosen by a pipeline constant, shared by the kernels that fuse an
// activation into their output (prepended to bias.wgsl, conv.wgsl, pool.wgsl, matmul.wgsl
// and matmul_subgroup.wgsl).

override ACT: u32 = 0u;  // 0 none, 1 relu, 2 sigmoid, 3 tanh

fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: {
            // Never overflows: exp is only taken of non-positive numbers.
            let e = exp(-abs(v));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
        }
        case 3u: { return tanh(v); }
        default: { return v; }
    }
}

// The activation's derivative, from its output y (relu: from its input works as well).
fn activation_slope(y: f32) -> f32 {
    switch ACT {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return y * (1.0 - y); }
        case 3u: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}

