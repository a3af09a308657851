// What a matrix product stores for each element (prepended, after activation.wgsl, to
// matmul.wgsl and matmul_subgroup.wgsl).

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

