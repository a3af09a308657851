// Batched matrix product C[z] = op(A[z]) · op(B[z]) with register blocking: each invocation
// computes an 8×8 block of C, reading A and B as vec4s along whichever axis is contiguous in
// memory (TA/TB select the layout at pipeline creation). Designed for CPU adapters such as
// lavapipe, where every storage load is costly and wide loads amortise it (see
// performance-notes.md). The loops over the block are written out by hand: lavapipe keeps
// dynamically indexed local arrays in memory, which made a looped version slower than the
// general kernel.
//
// Needs the contiguous axes to be multiples of 4 (the planner falls back to matmul.wgsl
// otherwise): K for an untransposed A or a transposed B, M for a transposed A, N for an
// untransposed B. Rows and columns past the edge are clamped on load and skipped on store, so
// M and N need not be multiples of 8.

override TA: bool = false;
override TB: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _p: u32,
    a_batch: u32,   // floats between batch items (0: shared)
    b_batch: u32,
    _q0: u32,
    _q1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn a_at(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}

fn b_at(i: u32) -> f32 {
    return b[i / 4u][i % 4u];
}

// Stores one row of the block (8 columns from j0), skipping columns past the edge.
fn store_row(row: u32, j0: u32, cbase: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let base = cbase + row * p.n + j0;
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var q = 0u; q < 8u; q++) {
        if (j0 + q < p.n) {
            c[base + q] = v[q];
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 8u;
    let j0 = gid.x * 8u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    let abase = gid.z * p.a_batch;
    let bbase = gid.z * p.b_batch;
    let m1 = p.m - 1u;
    let n1 = p.n - 1u;
    let hi_i = i0 + 4u < p.m;   // a second group of 4 rows exists (transposed A)
    let hi_j = j0 + 4u < p.n;   // a second group of 4 columns exists (plain B)
    let zero = vec4<f32>(0.0);
    var c0l = zero;
    var c0h = zero;
    var c1l = zero;
    var c1h = zero;
    var c2l = zero;
    var c2h = zero;
    var c3l = zero;
    var c3h = zero;
    var c4l = zero;
    var c4h = zero;
    var c5l = zero;
    var c5h = zero;
    var c6l = zero;
    var c6h = zero;
    var c7l = zero;
    var c7h = zero;
    let k4 = p.k & ~3u;
    for (var k0 = 0u; k0 < k4; k0 += 4u) {
        // a{r}: op(A)[i0 + r, k0 .. k0 + 4]
        var a0: vec4<f32>;
        var a1: vec4<f32>;
        var a2: vec4<f32>;
        var a3: vec4<f32>;
        var a4: vec4<f32>;
        var a5: vec4<f32>;
        var a6: vec4<f32>;
        var a7: vec4<f32>;
        if (!TA) {
            a0 = a[(abase + min(i0 + 0u, m1) * p.k + k0) / 4u];
            a1 = a[(abase + min(i0 + 1u, m1) * p.k + k0) / 4u];
            a2 = a[(abase + min(i0 + 2u, m1) * p.k + k0) / 4u];
            a3 = a[(abase + min(i0 + 3u, m1) * p.k + k0) / 4u];
            a4 = a[(abase + min(i0 + 4u, m1) * p.k + k0) / 4u];
            a5 = a[(abase + min(i0 + 5u, m1) * p.k + k0) / 4u];
            a6 = a[(abase + min(i0 + 6u, m1) * p.k + k0) / 4u];
            a7 = a[(abase + min(i0 + 7u, m1) * p.k + k0) / 4u];
        } else {
            let l0 = a[(abase + (k0 + 0u) * p.m + i0) / 4u];
            let h0 = select(zero, a[(abase + (k0 + 0u) * p.m + i0 + 4u) / 4u], hi_i);
            let l1 = a[(abase + (k0 + 1u) * p.m + i0) / 4u];
            let h1 = select(zero, a[(abase + (k0 + 1u) * p.m + i0 + 4u) / 4u], hi_i);
            let l2 = a[(abase + (k0 + 2u) * p.m + i0) / 4u];
            let h2 = select(zero, a[(abase + (k0 + 2u) * p.m + i0 + 4u) / 4u], hi_i);
            let l3 = a[(abase + (k0 + 3u) * p.m + i0) / 4u];
            let h3 = select(zero, a[(abase + (k0 + 3u) * p.m + i0 + 4u) / 4u], hi_i);
            a0 = vec4<f32>(l0.x, l1.x, l2.x, l3.x);
            a4 = vec4<f32>(h0.x, h1.x, h2.x, h3.x);
            a1 = vec4<f32>(l0.y, l1.y, l2.y, l3.y);
            a5 = vec4<f32>(h0.y, h1.y, h2.y, h3.y);
            a2 = vec4<f32>(l0.z, l1.z, l2.z, l3.z);
            a6 = vec4<f32>(h0.z, h1.z, h2.z, h3.z);
            a3 = vec4<f32>(l0.w, l1.w, l2.w, l3.w);
            a7 = vec4<f32>(h0.w, h1.w, h2.w, h3.w);
        }
        // b{kk}l, b{kk}h: op(B)[k0 + kk, j0 .. j0 + 4] and [j0 + 4 .. j0 + 8]
        var b0l: vec4<f32>;
        var b0h: vec4<f32>;
        var b1l: vec4<f32>;
        var b1h: vec4<f32>;
        var b2l: vec4<f32>;
        var b2h: vec4<f32>;
        var b3l: vec4<f32>;
        var b3h: vec4<f32>;
        if (!TB) {
            b0l = b[(bbase + (k0 + 0u) * p.n + j0) / 4u];
            b0h = select(zero, b[(bbase + (k0 + 0u) * p.n + j0 + 4u) / 4u], hi_j);
            b1l = b[(bbase + (k0 + 1u) * p.n + j0) / 4u];
            b1h = select(zero, b[(bbase + (k0 + 1u) * p.n + j0 + 4u) / 4u], hi_j);
            b2l = b[(bbase + (k0 + 2u) * p.n + j0) / 4u];
            b2h = select(zero, b[(bbase + (k0 + 2u) * p.n + j0 + 4u) / 4u], hi_j);
            b3l = b[(bbase + (k0 + 3u) * p.n + j0) / 4u];
            b3h = select(zero, b[(bbase + (k0 + 3u) * p.n + j0 + 4u) / 4u], hi_j);
        } else {
            let t0 = b[(bbase + min(j0 + 0u, n1) * p.k + k0) / 4u];
            let t1 = b[(bbase + min(j0 + 1u, n1) * p.k + k0) / 4u];
            let t2 = b[(bbase + min(j0 + 2u, n1) * p.k + k0) / 4u];
            let t3 = b[(bbase + min(j0 + 3u, n1) * p.k + k0) / 4u];
            let t4 = b[(bbase + min(j0 + 4u, n1) * p.k + k0) / 4u];
            let t5 = b[(bbase + min(j0 + 5u, n1) * p.k + k0) / 4u];
            let t6 = b[(bbase + min(j0 + 6u, n1) * p.k + k0) / 4u];
            let t7 = b[(bbase + min(j0 + 7u, n1) * p.k + k0) / 4u];
            b0l = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
            b0h = vec4<f32>(t4.x, t5.x, t6.x, t7.x);
            b1l = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
            b1h = vec4<f32>(t4.y, t5.y, t6.y, t7.y);
            b2l = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
            b2h = vec4<f32>(t4.z, t5.z, t6.z, t7.z);
            b3l = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
            b3h = vec4<f32>(t4.w, t5.w, t6.w, t7.w);
        }
        c0l += a0.x * b0l;
        c0h += a0.x * b0h;
        c1l += a1.x * b0l;
        c1h += a1.x * b0h;
        c2l += a2.x * b0l;
        c2h += a2.x * b0h;
        c3l += a3.x * b0l;
        c3h += a3.x * b0h;
        c4l += a4.x * b0l;
        c4h += a4.x * b0h;
        c5l += a5.x * b0l;
        c5h += a5.x * b0h;
        c6l += a6.x * b0l;
        c6h += a6.x * b0h;
        c7l += a7.x * b0l;
        c7h += a7.x * b0h;
        c0l += a0.y * b1l;
        c0h += a0.y * b1h;
        c1l += a1.y * b1l;
        c1h += a1.y * b1h;
        c2l += a2.y * b1l;
        c2h += a2.y * b1h;
        c3l += a3.y * b1l;
        c3h += a3.y * b1h;
        c4l += a4.y * b1l;
        c4h += a4.y * b1h;
        c5l += a5.y * b1l;
        c5h += a5.y * b1h;
        c6l += a6.y * b1l;
        c6h += a6.y * b1h;
        c7l += a7.y * b1l;
        c7h += a7.y * b1h;
        c0l += a0.z * b2l;
        c0h += a0.z * b2h;
        c1l += a1.z * b2l;
        c1h += a1.z * b2h;
        c2l += a2.z * b2l;
        c2h += a2.z * b2h;
        c3l += a3.z * b2l;
        c3h += a3.z * b2h;
        c4l += a4.z * b2l;
        c4h += a4.z * b2h;
        c5l += a5.z * b2l;
        c5h += a5.z * b2h;
        c6l += a6.z * b2l;
        c6h += a6.z * b2h;
        c7l += a7.z * b2l;
        c7h += a7.z * b2h;
        c0l += a0.w * b3l;
        c0h += a0.w * b3h;
        c1l += a1.w * b3l;
        c1h += a1.w * b3h;
        c2l += a2.w * b3l;
        c2h += a2.w * b3h;
        c3l += a3.w * b3l;
        c3h += a3.w * b3h;
        c4l += a4.w * b3l;
        c4h += a4.w * b3h;
        c5l += a5.w * b3l;
        c5h += a5.w * b3h;
        c6l += a6.w * b3l;
        c6h += a6.w * b3h;
        c7l += a7.w * b3l;
        c7h += a7.w * b3h;
    }
    // Leftover k (only when K is not a multiple of 4: transposed A, plain B), one at a time.
    for (var kk = k4; kk < p.k; kk++) {
        let bl = bbase + kk * p.n + j0;
        let lo = vec4<f32>(b_at(bl), b_at(bl + 1u), b_at(bl + 2u), b_at(bl + 3u));
        var hi = zero;
        if (hi_j) {
            hi = vec4<f32>(b_at(bl + 4u), b_at(bl + 5u), b_at(bl + 6u), b_at(bl + 7u));
        }
        let ab = abase + kk * p.m;
        let x0 = a_at(ab + min(i0 + 0u, m1));
        c0l += x0 * lo;
        c0h += x0 * hi;
        let x1 = a_at(ab + min(i0 + 1u, m1));
        c1l += x1 * lo;
        c1h += x1 * hi;
        let x2 = a_at(ab + min(i0 + 2u, m1));
        c2l += x2 * lo;
        c2h += x2 * hi;
        let x3 = a_at(ab + min(i0 + 3u, m1));
        c3l += x3 * lo;
        c3h += x3 * hi;
        let x4 = a_at(ab + min(i0 + 4u, m1));
        c4l += x4 * lo;
        c4h += x4 * hi;
        let x5 = a_at(ab + min(i0 + 5u, m1));
        c5l += x5 * lo;
        c5h += x5 * hi;
        let x6 = a_at(ab + min(i0 + 6u, m1));
        c6l += x6 * lo;
        c6h += x6 * hi;
        let x7 = a_at(ab + min(i0 + 7u, m1));
        c7l += x7 * lo;
        c7h += x7 * hi;
    }
    let cbase = gid.z * p.m * p.n;
    store_row(i0 + 0u, j0, cbase, c0l, c0h);
    store_row(i0 + 1u, j0, cbase, c1l, c1h);
    store_row(i0 + 2u, j0, cbase, c2l, c2h);
    store_row(i0 + 3u, j0, cbase, c3l, c3h);
    store_row(i0 + 4u, j0, cbase, c4l, c4h);
    store_row(i0 + 5u, j0, cbase, c5l, c5h);
    store_row(i0 + 6u, j0, cbase, c6l, c6h);
    store_row(i0 + 7u, j0, cbase, c7l, c7h);
}
