// What every matrix product kernel shares (prepended, after activation.wgsl, to matmul.wgsl,
// matmul_subgroup.wgsl and matmul_texture.wgsl): the parameter block, the result C, the
// epilogue, the store of 4 columns, and where B's values lie when B is read through a
// window (window.wgsl; GATHER). Each kernel binds A and B (bindings 1 and 2) and declares
// TB itself.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> c: array<elem>;

// The epilogue (see `epilogue`): a bias along rows or columns of C then an activation, or
// the factor an activation's gradient contributes (activation.wgsl). `side` is the bias or
// the activation's output; where there is no epilogue it is bound to A.
override EPI: u32 = EPI_NONE;  // bias[column], bias[row], or times act'(side[index])
@group(0) @binding(4) var<storage, read> side: array<elem>;

// What is stored for C[row, col] = v, at `index` in C.
fn epilogue(row: u32, col: u32, index: u32, v: f32) -> f32 {
    switch EPI {
        case EPI_BIAS_PER_COLUMN: { return activate(v + side[col]); }
        case EPI_BIAS_PER_ROW: { return activate(v + side[row]); }
        case EPI_ACTIVATION_SLOPE: { return v * activation_slope(side[index]); }
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

// Under GATHER, what the lane's 4 columns of op(B) fix for the whole k-loop, so that each
// k-step only adds: with TB the columns are output positions, kept as the wrapped (top,
// left) corners of their windows in u and v; otherwise they are taps, kept as (channel·WH,
// kh·DH, kw·DW) in u, v and w.
struct Cols4 {
    u: vec4<u32>,
    v: vec4<u32>,
    w: vec4<u32>,
}

fn b_prepare(j: u32) -> Cols4 {
    let cols = min(vec4<u32>(j, j + 1u, j + 2u, j + 3u), vec4<u32>(p.n - 1u));
    if (TB) {
        return Cols4(cols / OW * SH - PH, cols % OW * SW - PW, vec4<u32>(0u));
    }
    return Cols4(cols / (KW * KH) * WH, cols / KW % KH * DH, cols % KW * DW);
}

// Where op(B)[k, j .. j + 4] lies under GATHER: the indices of its floats from the start of
// the image, and which of them lie inside it (the others are padding, read as zero; rows
// above or left of the image wrap past its size).
struct Gathered {
    i: vec4<u32>,
    inside: vec4<bool>,
}

fn gather4(k: u32, q: Cols4) -> Gathered {
    var plane: vec4<u32>;
    var ih: vec4<u32>;
    var iw: vec4<u32>;
    if (TB) {
        plane = vec4<u32>(k / (KW * KH) * WH);
        ih = q.u + k / KW % KH * DH;
        iw = q.v + k % KW * DW;
    } else {
        plane = q.u;
        ih = q.v + (k / OW * SH - PH);
        iw = q.w + (k % OW * SW - PW);
    }
    let inside = (ih < vec4<u32>(WH)) & (iw < vec4<u32>(WW));
    return Gathered(select(vec4<u32>(0u), (plane + ih) * WW + iw, inside), inside);
}
