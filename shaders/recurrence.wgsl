// LSTM scans over [batch, steps, ..] sequences: one workgroup owns GROUP_SEQS sequences and
// loops over their steps, so one dispatch runs the whole recurrence whatever the length, and
// a finished sequence's state stops changing (steps past its length are written as zeros).
// Owning several sequences lets each load of U serve all of them: on a CPU adapter, where
// every load costs, that is what the recurrent product's speed comes down to.
//
// Gate blocks of the pre-activations z = x·W + b + h·U, each H wide, in CNTK's order:
//   g (candidate, tanh), i (input, σ), f (forget, σ, plus FORGET_BIAS), o (output, σ);
//   c' = f·c + i·g,  h' = o·tanh(c').
// Lane `lane` owns hidden units j = lane, lane + 64, ..: their four gates, cell and hidden
// state in every sequence of the group, so the cell update needs no other lane.
// lstm_forward writes [h | c] per step ([batch, steps, 2H]); lstm_backward walks the steps in
// reverse and writes, per step, dz (the gradient of z, 4H) and the gradients reaching the
// previous h and c (2H): [batch, steps, 6H]. BACKWARDS runs the scan from the last step down.

override FORGET_BIAS: f32 = 0.0;
// Sequences per workgroup, at most MAX_SEQS, with GROUP_SEQS · H ≤ MAX_STATE (the host
// picks 4, or 2 above 256 hidden units).
override GROUP_SEQS: u32 = 4u;
const MAX_SEQS: u32 = 4u;
const MAX_STATE: u32 = 1024u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xproj: array<elem>;
@group(0) @binding(2) var<storage, read> u: array<elem>;
@group(0) @binding(3) var<storage, read> h0: array<elem>;
@group(0) @binding(4) var<storage, read> c0: array<elem>;
@group(0) @binding(5) var<storage, read> lengths: array<elem>;
// lstm_backward only: the forward states, then the incoming gradient of them.
@group(0) @binding(6) var<storage, read> state: array<elem>;
@group(0) @binding(7) var<storage, read> grad: array<elem>;
@group(0) @binding(8) var<storage, read_write> out: array<elem>;

// Hidden states of the group's sequences, ⌈H/4⌉ quads each, zero past H: two buffers
// (this step's and the next) forwards, one backwards. The host sizes it per entry point
// (512 quads forwards, 256 backwards) so that the backward scan's workgroup memory stays
// within 32 KiB, the limit of GL adapters.
override STATE_QUADS: u32 = 512u;
var<workgroup> hq4: array<vec4<f32>, STATE_QUADS>;
// Cell states forwards, the gradient reaching c from the later steps backwards.
var<workgroup> cst: array<f32, MAX_STATE>;
// Backwards: the gradient reaching h from the later steps, and this step's dz per unit as
// (g, i, f, o).
var<workgroup> dhs: array<f32, MAX_STATE>;
var<workgroup> dz4: array<vec4<f32>, MAX_STATE>;
var<workgroup> group_len: array<u32, MAX_SEQS>;
var<workgroup> group_max: u32;

// The lengths of the group's sequences into group_len (0 past the batch), and the longest,
// uniform across the workgroup.
fn group_lengths(b0: u32, lane: u32) -> u32 {
    if (lane == 0u) {
        var longest = 0u;
        for (var s = 0u; s < GROUP_SEQS; s++) {
            var l = 0u;
            if (b0 + s < p.batch) {
                l = u32(lengths[b0 + s]);
            }
            group_len[s] = l;
            longest = max(longest, l);
        }
        group_max = longest;
    }
    return workgroupUniformLoad(&group_max);
}

// Unit j's four gates in row r of U (r clamped to the last row: the quads' padding is zero).
fn u_gates(r: u32, j: u32) -> vec4<f32> {
    let hn = p.hidden;
    let at = min(r, hn - 1u) * 4u * hn + j;
    return vec4<f32>(u[at], u[at + hn], u[at + 2u * hn], u[at + 3u * hn]);
}

// z (as g, i, f, o) of unit j in each sequence of the group at the group's iteration,
// from the states in hq4[buf..]: xproj + h·U. Entries of inactive sequences are garbage.
fn unit_gates(j: u32, steps_at: array<u32, MAX_SEQS>, buf: u32) -> array<vec4<f32>, MAX_SEQS> {
    let hn = p.hidden;
    let quads = (hn + 3u) / 4u;
    var z: array<vec4<f32>, MAX_SEQS>;
    for (var s = 0u; s < GROUP_SEQS; s++) {
        let at = min(steps_at[s], p.batch * p.steps - 1u) * 4u * hn + j;
        z[s] = vec4<f32>(xproj[at], xproj[at + hn], xproj[at + 2u * hn], xproj[at + 3u * hn]);
    }
    for (var q = 0u; q < quads; q++) {
        let u0 = u_gates(4u * q, j);
        let u1 = u_gates(4u * q + 1u, j);
        let u2 = u_gates(4u * q + 2u, j);
        let u3 = u_gates(4u * q + 3u, j);
        for (var s = 0u; s < GROUP_SEQS; s++) {
            let h = hq4[buf + s * quads + q];
            z[s] += h.x * u0 + h.y * u1 + h.z * u2 + h.w * u3;
        }
    }
    return z;
}

// The gates' values from their pre-activations (g, i, f, o).
fn activate(z: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(tanh(z.x), sigmoid(z.y), sigmoid(z.z + FORGET_BIAS), sigmoid(z.w));
}

// Sets unit j of sequence s in the quad buffer starting at `buf`.
fn put_h(buf: u32, s: u32, j: u32, v: f32) {
    let quads = (p.hidden + 3u) / 4u;
    hq4[buf + s * quads + j / 4u][j % 4u] = v;
}

// Writes zeros over the steps of sequence b0 + s from its length on (`width` per step).
fn zero_tail(b0: u32, s: u32, width: u32, lane: u32) {
    if (b0 + s >= p.batch) {
        return;
    }
    for (var e = group_len[s] * width + lane; e < p.steps * width; e += 64u) {
        out[(b0 + s) * p.steps * width + e] = 0.0;
    }
}

@compute @workgroup_size(64)
fn lstm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lane: u32) {
    let b0 = (wid.x + wid.y * nwg.x) * GROUP_SEQS;
    let hn = p.hidden;
    let quads = (hn + 3u) / 4u;
    if (b0 >= p.batch) {
        return;
    }
    let longest = group_lengths(b0, lane);
    // Both quad buffers: h0, zero past H (and for sequences past the batch).
    for (var e = lane; e < 2u * GROUP_SEQS * quads * 4u; e += 64u) {
        let s = (e / (quads * 4u)) % GROUP_SEQS;
        let j = e % (quads * 4u);
        var v = 0.0;
        if (j < hn && b0 + s < p.batch) {
            v = h0[(b0 + s) * hn + j];
        }
        hq4[e / 4u][e % 4u] = v;
    }
    for (var e = lane; e < GROUP_SEQS * hn; e += 64u) {
        let b = b0 + e / hn;
        cst[e] = select(0.0, c0[min(b, p.batch - 1u) * hn + e % hn], b < p.batch);
    }
    workgroupBarrier();
    for (var k = 0u; k < longest; k++) {
        let now = (k % 2u) * GROUP_SEQS * quads;
        let next = GROUP_SEQS * quads - now;
        // Each sequence's (batch, step) row at this iteration.
        var rows: array<u32, MAX_SEQS>;
        for (var s = 0u; s < GROUP_SEQS; s++) {
            rows[s] = (b0 + s) * p.steps + step_at(k, max(group_len[s], 1u));
        }
        for (var j = lane; j < hn; j += 64u) {
            let z = unit_gates(j, rows, now);
            for (var s = 0u; s < GROUP_SEQS; s++) {
                if (k >= group_len[s]) {
                    continue;
                }
                let a = activate(z[s]);
                let g = a.x; let i = a.y; let f = a.z; let o = a.w;
                let c = f * cst[s * hn + j] + i * g;
                let h = o * tanh(c);
                cst[s * hn + j] = c;
                put_h(next, s, j, h);
                out[rows[s] * 2u * hn + j] = h;
                out[rows[s] * 2u * hn + hn + j] = c;
            }
        }
        workgroupBarrier();
    }
    for (var s = 0u; s < GROUP_SEQS; s++) {
        zero_tail(b0, s, 2u * hn, lane);
    }
}

@compute @workgroup_size(64)
fn lstm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    let b0 = (wid.x + wid.y * nwg.x) * GROUP_SEQS;
    let hn = p.hidden;
    let quads = (hn + 3u) / 4u;
    if (b0 >= p.batch) {
        return;
    }
    let longest = group_lengths(b0, lane);
    for (var e = lane; e < GROUP_SEQS * quads * 4u; e += 64u) {
        hq4[e / 4u][e % 4u] = 0.0;
    }
    for (var e = lane; e < GROUP_SEQS * hn; e += 64u) {
        dhs[e] = 0.0;
        cst[e] = 0.0;
    }
    workgroupBarrier();
    for (var k = 0u; k < longest; k++) {
        // Sequence s runs its forward iterations in reverse, the longest starting first:
        // `kk` is the forward iteration it undoes now (active while kk < its length).
        let kk = longest - 1u - k;
        var rows: array<u32, MAX_SEQS>;
        var prevs: array<u32, MAX_SEQS>;
        for (var s = 0u; s < GROUP_SEQS; s++) {
            let l = max(group_len[s], 1u);
            rows[s] = (b0 + s) * p.steps + step_at(min(kk, l - 1u), l);
            prevs[s] = (b0 + s) * p.steps + step_at(max(min(kk, l - 1u), 1u) - 1u, l);
        }
        // The state before each active sequence's step: h0 at its first.
        for (var e = lane; e < GROUP_SEQS * hn; e += 64u) {
            let s = e / hn;
            let j = e % hn;
            if (kk < group_len[s]) {
                let hp = select(state[prevs[s] * 2u * hn + j], h0[(b0 + s) * hn + j], kk == 0u);
                put_h(0u, s, j, hp);
            }
        }
        workgroupBarrier();
        for (var j = lane; j < hn; j += 64u) {
            let z = unit_gates(j, rows, 0u);
            for (var s = 0u; s < GROUP_SEQS; s++) {
                if (kk >= group_len[s]) {
                    continue;
                }
                let a = activate(z[s]);
                let g = a.x; let i = a.y; let f = a.z; let o = a.w;
                let first = kk == 0u;
                let c_prev = select(state[prevs[s] * 2u * hn + hn + j], c0[(b0 + s) * hn + j], first);
                let at = rows[s] * 2u * hn;
                let tc = tanh(state[at + hn + j]);
                let dht = grad[at + j] + dhs[s * hn + j];
                let dct = grad[at + hn + j] + cst[s * hn + j] + dht * o * (1.0 - tc * tc);
                let dz = vec4<f32>(dct * i * (1.0 - g * g), dct * g * i * (1.0 - i),
                                   dct * c_prev * f * (1.0 - f), dht * tc * o * (1.0 - o));
                let base = rows[s] * 6u * hn;
                out[base + j] = dz.x;
                out[base + hn + j] = dz.y;
                out[base + 2u * hn + j] = dz.z;
                out[base + 3u * hn + j] = dz.w;
                dz4[s * hn + j] = dz;
                cst[s * hn + j] = dct * f;
            }
        }
        workgroupBarrier();
        // The gradient reaching the previous h: dz · Uᵀ, unit j of each sequence.
        for (var j = lane; j < hn; j += 64u) {
            var acc: array<f32, MAX_SEQS>;
            for (var q = 0u; q < hn; q++) {
                let at = j * 4u * hn + q;
                let uq = vec4<f32>(u[at], u[at + hn], u[at + 2u * hn], u[at + 3u * hn]);
                for (var s = 0u; s < GROUP_SEQS; s++) {
                    acc[s] += dot(dz4[s * hn + q], uq);
                }
            }
            for (var s = 0u; s < GROUP_SEQS; s++) {
                if (kk >= group_len[s]) {
                    continue;
                }
                dhs[s * hn + j] = acc[s];
                let base = rows[s] * 6u * hn;
                out[base + 4u * hn + j] = acc[s];
                out[base + 5u * hn + j] = cst[s * hn + j];
            }
        }
        workgroupBarrier();
    }
    for (var s = 0u; s < GROUP_SEQS; s++) {
        zero_tail(b0, s, 6u * hn, lane);
    }
}
