// The LSTM one step at a time, for CPU adapters: each step's recurrent product h·U runs
// through the tuned matmul kernels (a [batch, H] · [H, 4H] product, register-tiled), and the
// cell kernels here do the rest of the step, one invocation per (sequence, hidden unit).
// The plan records the step's dispatches once and replays them for every step
// (plan/stepwise.rs); `p.step` is the iteration.
//
// Gate blocks and the cell are those of recurrence.wgsl: z = x·W + b + h·U in blocks
// g, i, f, o; c' = f·c + i·g; h' = o·tanh(c'). Outputs match its kernels exactly:
// lstm_step_forward writes [h | c] per step ([batch, steps, 2H]); lstm_step_backward writes
// [dz (4H) | gradient reaching the previous h (H) | ... previous c (H)] per step
// ([batch, steps, 6H]); steps past a sequence's length are zeros.
//
// Scratch buffers (plan/stepwise.rs lays them out; parts start at multiples of 64 floats):
//   forwards:  ops = [h carry (batch·H)], prods = [h·U (batch·4H)], aux = [c carry],
//              gates = the activated gates (g, i, f, o) of every iteration, which the
//              backward pass reads instead of recomputing h·U
//   backwards: ops = [dz] (the product's left operand), prods = [dz·Uᵀ] (its output),
//              aux = [dc carry | h0 | c0]

override FORGET_BIAS: f32 = 0.0;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xproj: array<elem>;
@group(0) @binding(2) var<storage, read> lengths: array<elem>;
@group(0) @binding(3) var<storage, read> state: array<elem>;
@group(0) @binding(4) var<storage, read> grad: array<elem>;
@group(0) @binding(5) var<storage, read> h0: array<elem>;
@group(0) @binding(6) var<storage, read> c0: array<elem>;
@group(0) @binding(7) var<storage, read_write> prods: array<elem>;
@group(0) @binding(8) var<storage, read_write> ops: array<elem>;
@group(0) @binding(9) var<storage, read_write> aux: array<elem>;
@group(0) @binding(10) var<storage, read_write> out: array<elem>;
@group(0) @binding(11) var<storage, read_write> gates: array<vec4<f32>>;

// `n` floats rounded up to a whole number of 64-float blocks (256 bytes, the binding offset
// alignment the products' slices need).
fn aligned(n: u32) -> u32 {
    return (n + 63u) / 64u * 64u;
}

// Sequence b, unit j and whether the invocation is inside the batch (1) or past it (0).
fn unit_of(gid: vec3<u32>, nwg: vec3<u32>) -> vec3<u32> {
    let e = gid.x + gid.y * nwg.x * 256u;
    let hn = p.hidden;
    return vec3<u32>(e / hn, e % hn, u32(e < p.batch * hn));
}

fn seq_len(b: u32) -> u32 {
    return max(u32(lengths[b]), 1u);
}

fn activate(z: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(tanh(z.x), sigmoid(z.y), sigmoid(z.z + FORGET_BIAS), sigmoid(z.w));
}

// z of unit j of sequence b at step t: xproj plus this iteration's product.
fn gates_at(b: u32, t: u32, j: u32) -> vec4<f32> {
    let hn = p.hidden;
    let x = (b * p.steps + t) * 4u * hn + j;
    let r = b * 4u * hn + j;
    return vec4<f32>(xproj[x] + prods[r], xproj[x + hn] + prods[r + hn],
                     xproj[x + 2u * hn] + prods[r + 2u * hn],
                     xproj[x + 3u * hn] + prods[r + 3u * hn]);
}

// Forwards, before the first step: the carries start from h0 and c0.
@compute @workgroup_size(256)
fn lstm_step_start(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = unit_of(gid, nwg);
    if (u.z == 0u) {
        return;
    }
    let e = u.x * p.hidden + u.y;
    ops[e] = h0[e];
    aux[e] = c0[e];
}

// Forwards, iteration p.step: each sequence's step at that iteration, from its carries.
@compute @workgroup_size(256)
fn lstm_step_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = unit_of(gid, nwg);
    if (u.z == 0u) {
        return;
    }
    let b = u.x;
    let j = u.y;
    let hn = p.hidden;
    let k = p.step;
    let l = u32(lengths[b]);
    if (k >= l) {
        // Past the sequence: its state stays; the padded step is zeros.
        let at = (b * p.steps + k) * 2u * hn;
        out[at + j] = 0.0;
        out[at + hn + j] = 0.0;
        return;
    }
    let t = step_at(k, l);
    let a = activate(gates_at(b, t, j));
    gates[(k * p.batch + b) * hn + j] = a;
    let e = b * hn + j;
    let c = a.z * aux[e] + a.y * a.x;
    let h = a.w * tanh(c);
    aux[e] = c;
    ops[e] = h;
    let at = (b * p.steps + t) * 2u * hn;
    out[at + j] = h;
    out[at + hn + j] = c;
}

// Backwards: the state before iteration kk of sequence b (h or c, `part` 0 or 1): the
// forward state one iteration earlier, or the initial state at the first.
fn before(b: u32, j: u32, kk: u32, l: u32, part: u32) -> f32 {
    let hn = p.hidden;
    let nb = p.batch * hn;
    if (kk == 0u) {
        return aux[aligned(nb) * (1u + part) + b * hn + j];
    }
    return state[(b * p.steps + step_at(kk - 1u, l)) * 2u * hn + part * hn + j];
}

// Backwards, before the first iteration (the last step): carries zero and the initial
// states kept in aux.
@compute @workgroup_size(256)
fn lstm_step_back_start(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = unit_of(gid, nwg);
    if (u.z == 0u) {
        return;
    }
    let hn = p.hidden;
    let nb = p.batch * hn;
    let e = u.x * hn + u.y;
    aux[e] = 0.0;
    aux[aligned(nb) + e] = h0[e];
    aux[2u * aligned(nb) + e] = c0[e];
    prods[e] = 0.0;
}

// Backwards, iteration p.step: undoes forward iteration kk = steps − 1 − p.step of every
// sequence still that long, from the gates the forward iteration kept. prods holds
// dz_next·Uᵀ, the gradient reaching this iteration's h from the next one.
@compute @workgroup_size(256)
fn lstm_step_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = unit_of(gid, nwg);
    if (u.z == 0u) {
        return;
    }
    let b = u.x;
    let j = u.y;
    let hn = p.hidden;
    let kk = p.steps - 1u - p.step;
    let l = u32(lengths[b]);
    let dz_at = b * 4u * hn + j;
    if (kk >= l) {
        // Not yet started (the sequence is shorter): zeros at the padded step, no dz.
        let at = (b * p.steps + kk) * 6u * hn;
        for (var q = 0u; q < 6u; q++) {
            out[at + q * hn + j] = 0.0;
        }
        for (var q = 0u; q < 4u; q++) {
            ops[dz_at + q * hn] = 0.0;
        }
        return;
    }
    let t = step_at(kk, l);
    let a = gates[(kk * p.batch + b) * hn + j];
    let g = a.x; let i = a.y; let f = a.z; let o = a.w;
    let dh_next = prods[b * hn + j];
    if (kk + 1u < l) {
        // The gradient reaching the previous h of the later step, known only now.
        out[(b * p.steps + step_at(kk + 1u, l)) * 6u * hn + 4u * hn + j] = dh_next;
    }
    let c_prev = before(b, j, kk, l, 1u);
    let at = (b * p.steps + t) * 2u * hn;
    let tc = tanh(state[at + hn + j]);
    let dht = grad[at + j] + dh_next;
    let e = b * hn + j;
    let dct = grad[at + hn + j] + aux[e] + dht * o * (1.0 - tc * tc);
    let dz = vec4<f32>(dct * i * (1.0 - g * g), dct * g * i * (1.0 - i),
                       dct * c_prev * f * (1.0 - f), dht * tc * o * (1.0 - o));
    let base = (b * p.steps + t) * 6u * hn;
    out[base + j] = dz.x;
    out[base + hn + j] = dz.y;
    out[base + 2u * hn + j] = dz.z;
    out[base + 3u * hn + j] = dz.w;
    out[base + 5u * hn + j] = dct * f;
    aux[e] = dct * f;
    ops[dz_at] = dz.x;
    ops[dz_at + hn] = dz.y;
    ops[dz_at + 2u * hn] = dz.z;
    ops[dz_at + 3u * hn] = dz.w;
}

// Backwards, after the last iteration: the gradient reaching h0 (that of each sequence's
// first iteration), which the product computed last.
@compute @workgroup_size(256)
fn lstm_step_back_finish(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = unit_of(gid, nwg);
    if (u.z == 0u) {
        return;
    }
    let hn = p.hidden;
    let l = seq_len(u.x);
    let dh = prods[u.x * hn + u.y];
    out[(u.x * p.steps + step_at(0u, l)) * 6u * hn + 4u * hn + u.y] = dh;
}
