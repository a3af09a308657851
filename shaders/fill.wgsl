// Fills a buffer (a constant, NaN poison, or seeded random numbers) and applies dropout, both
// from a counter-based generator: the random bits of element i depend only on (seed, salt, i),
// so results are reproducible and independent of how the work is split into workgroups.
// Dropout salts with the training step, so each step draws a new mask and its backward pass
// (the same op on the gradient) redraws the same one.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;
@group(0) @binding(3) var<uniform> rt: Runtime;
@group(0) @binding(4) var<storage, read_write> first_bad: array<atomic<u32>>;

// PCG-style integer hash (one round of a permuted congruential generator).
fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// 32 random bits for counter i, keyed by the 64-bit seed and a salt.
fn bits(i: u32, salt: u32) -> u32 {
    return pcg(pcg(pcg(i) ^ pcg(p.seed_lo ^ pcg(salt))) ^ p.seed_hi);
}

// A uniform number in the open interval (0, 1) from 24 random bits.
fn unit(i: u32, salt: u32) -> f32 {
    return (f32(bits(i, salt) >> 8u) + 0.5) / 16777216.0;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var r: f32;
    switch p.op {
        case FILL_CONST: {
            r = p.a;
        }
        case FILL_UNIFORM: {
            r = p.a + (p.b - p.a) * unit(i, 0u);
        }
        case FILL_NORMAL: {
            // Box-Muller on two independent counters per element.
            let u1 = unit(2u * i, 0u);
            let u2 = unit(2u * i + 1u, 0u);
            r = p.a + p.b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        }
        default: {  // FILL_NAN
            r = bitcast<f32>(0x7fc00000u);
        }
    }
    out[i] = r;
}

@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    out[i] = select(0.0, x[i] * p.b, unit(i, rt.step + 1u) >= p.a);
}

// The per-op numerics check (ContextOptions::check_numerics): the smallest node id (p.op) whose
// value holds a NaN or an infinity; node ids follow the graph's order, so it names the first
// op that produced one.
@compute @workgroup_size(256)
fn finite_check(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    if ((bitcast<u32>(x[i]) & 0x7f800000u) == 0x7f800000u) {
        atomicMin(&first_bad[0], p.op);
    }
}
