// Elementwise binary functions with numpy broadcasting: out = alpha * f(a, b).
// Each operand is addressed through its own strides over the output's index space; a stride of
// 0 repeats the operand along that axis. rank 0 means both operands are contiguous and as large
// as the output (no index arithmetic).

struct Params {
    n: u32,
    rank: u32,
    op: u32,    // see BinaryOp in src/graph.rs
    alpha: f32,
    dims: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return select(0.0, 1.0, x > y); }
        case 7u: { return select(0.0, 1.0, x >= y); }
        case 8u: { return select(0.0, 1.0, x < y); }
        case 9u: { return select(0.0, 1.0, x <= y); }
        case 10u: { return select(0.0, 1.0, x == y); }
        // Gradient helpers: x is the forward input (relu) or output (sigmoid, tanh), y the
        // incoming gradient.
        case 11u: { return select(0.0, y, x > 0.0); }
        case 12u: { return y * x * (1.0 - x); }
        case 13u: { return y * (1.0 - x * x); }
        default: { return x; }
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
