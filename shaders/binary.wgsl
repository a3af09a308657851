// Elementwise binary functions with numpy broadcasting: out = alpha * f(a, b).
// Each operand is addressed through its own strides over the output's index space; a stride of
// 0 repeats the operand along that axis. rank 0 means both operands are contiguous and as large
// as the output (no index arithmetic).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> out: array<elem>;

fn apply(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case BINARY_ADD: { return x + y; }
        case BINARY_SUB: { return x - y; }
        case BINARY_MUL: { return x * y; }
        case BINARY_DIV: { return x / y; }
        case BINARY_MAX: { return max_nan(x, y); }
        case BINARY_MIN: { return min_nan(x, y); }
        case BINARY_GT: { return select(0.0, 1.0, x > y); }
        case BINARY_GE: { return select(0.0, 1.0, x >= y); }
        case BINARY_LT: { return select(0.0, 1.0, x < y); }
        case BINARY_LE: { return select(0.0, 1.0, x <= y); }
        case BINARY_EQ: { return select(0.0, 1.0, x == y); }
        // Gradient helpers: x is the forward input (relu) or output (sigmoid, tanh), y the
        // incoming gradient.
        case BINARY_RELU_GRAD: { return select(0.0, y, x > 0.0); }
        case BINARY_SIGMOID_GRAD: { return y * x * (1.0 - x); }
        case BINARY_TANH_GRAD: { return y * (1.0 - x * x); }
        default: { return x; }  // BINARY_FIRST
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var ia = i;
    var ib = i;
    if (p.rank > 0u) {
        ia = 0u;
        ib = 0u;
        var rem = i;
        for (var d = i32(p.rank) - 1; d >= 0; d--) {
            let q = u32(d) / 4u;
            let r = u32(d) % 4u;
            let size = p.dims[q][r];
            let c = rem % size;
            rem = rem / size;
            ia += c * p.sa[q][r];
            ib += c * p.sb[q][r];
        }
    }
    out[i] = p.alpha * apply(p.op, a[ia], b[ib]);
}
