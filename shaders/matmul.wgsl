// Batched matrix product C[z] = op(A[z]) · op(B[z]) for any strides, so transposes and an
// operand shared across the batch (batch stride 0) need no copies.
// Each invocation computes a 4×4 block of C, a workgroup a 32×32 tile; edges are handled by
// clamping the loads and guarding the stores, so any M, N, K works.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _p: u32,
    a_row: u32,     // stride between rows i of op(A)
    a_col: u32,     // stride between columns k of op(A)
    a_batch: u32,
    b_row: u32,     // stride between rows k of op(B)
    b_col: u32,     // stride between columns j of op(B)
    b_batch: u32,
    _q0: u32,
    _q1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let rows = min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
    let cols = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    let ar = z * p.a_batch + rows * p.a_row;
    let bc = z * p.b_batch + cols * p.b_col;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let ak = kk * p.a_col;
        let bk = kk * p.b_row;
        let bv = vec4<f32>(b[bc.x + bk], b[bc.y + bk], b[bc.z + bk], b[bc.w + bk]);
        acc0 += a[ar.x + ak] * bv;
        acc1 += a[ar.y + ak] * bv;
        acc2 += a[ar.z + ak] * bv;
        acc3 += a[ar.w + ak] * bv;
    }
    let base = z * p.m * p.n;
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + i;
        if (r < p.m) {
            for (var j = 0u; j < 4u; j++) {
                if (col0 + j < p.n) {
                    c[base + r * p.n + col0 + j] = acc[i][j];
                }
            }
        }
    }
}
