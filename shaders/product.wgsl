// What every matrix product kernel shares (prepended, after activation.wgsl, to matmul.wgsl,
// matmul_subgroup.wgsl and matmul_texture.wgsl): the parameter block, the result C, the
// epilogue and the store of 4 columns. Each kernel binds A and B (bindings 1 and 2) itself.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    zsum: u32,      // > 1: C = Σ over this many batch items (one output, grid z = 1)
    a_batch: u32,   // floats between batch items (0: shared)
    b_batch: u32,
    alpha: f32,     // C = alpha · op(A) · op(B), before the epilogue
    _q1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// The epilogue (see `epilogue`): a bias along rows or columns of C then an activation, or
// the factor an activation's gradient contributes (activation.wgsl). `side` is the bias or
// the activation's output; where there is no epilogue it is bound to A.
override EPI: u32 = 0u;  // 0 none, 1 bias[column], 2 bias[row], 3 times act'(side[index])
@group(0) @binding(4) var<storage, read> side: array<f32>;

// What is stored for C[row, col] = v, at `index` in C.
fn epilogue(row: u32, col: u32, index: u32, v: f32) -> f32 {
    switch EPI {
        case 1u: { return activate(v + side[col]); }
        case 2u: { return activate(v + side[row]); }
        case 3u: { return v * activation_slope(side[index]); }
        default: { return activate(v); }
    }
}

// Stores C[row, j .. j + 4] = alpha · v through the epilogue, skipping what lies past the
// edge.
fn store4(cbase: u32, row: u32, j: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let base = cbase + row * p.n;
    for (var q = 0u; q < 4u; q++) {
        if (j + q < p.n) {
            c[base + j + q] = epilogue(row, j + q, base + j + q, p.alpha * v[q]);
        }
    }
}
