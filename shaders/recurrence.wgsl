// LSTM scans over [batch, steps, ..] sequences: one workgroup per sequence loops over its
// steps, so one dispatch runs the whole recurrence whatever the length, and a finished
// sequence's state stops changing (steps past its length are written as zeros).
//
// Gate blocks of the pre-activations z = x·W + b + h·U, each H wide, in CNTK's order:
//   g (candidate, tanh), i (input, σ), f (forget, σ, plus FORGET_BIAS), o (output, σ);
//   c' = f·c + i·g,  h' = o·tanh(c').
// lstm_forward writes [h | c] per step ([batch, steps, 2H]); lstm_backward walks the steps in
// reverse and writes, per step, dz (the gradient of z, 4H) and the gradients reaching the
// previous h and c (2H): [batch, steps, 6H]. BACKWARDS runs the scan from the last step down.

override FORGET_BIAS: f32 = 0.0;
const MAX_HIDDEN: u32 = 512u;

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

var<workgroup> hs: array<f32, MAX_HIDDEN>;
var<workgroup> cs: array<f32, MAX_HIDDEN>;
var<workgroup> dh: array<f32, MAX_HIDDEN>;
var<workgroup> zs: array<f32, 2048>;

// zs[q] = xproj[b, t, q] + Σ_j hs[j] · u[j, q] for this lane's gates.
fn gates(b: u32, t: u32, lane: u32) {
    let g4 = 4u * p.hidden;
    for (var q = lane; q < g4; q += 64u) {
        var z = xproj[(b * p.steps + t) * g4 + q];
        for (var j = 0u; j < p.hidden; j++) {
            z += hs[j] * u[j * g4 + q];
        }
        zs[q] = z;
    }
}

@compute @workgroup_size(64)
fn lstm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lane: u32) {
    let b = wid.x + wid.y * nwg.x;
    let hn = p.hidden;
    if (b >= p.batch) {
        return;
    }
    let l = sequence_length(b, lane);
    for (var j = lane; j < hn; j += 64u) {
        hs[j] = h0[b * hn + j];
        cs[j] = c0[b * hn + j];
    }
    workgroupBarrier();
    for (var k = 0u; k < l; k++) {
        let t = step_at(k, l);
        gates(b, t, lane);
        workgroupBarrier();
        let base = (b * p.steps + t) * 2u * hn;
        for (var j = lane; j < hn; j += 64u) {
            let g = tanh(zs[j]);
            let i = sigmoid(zs[hn + j]);
            let f = sigmoid(zs[2u * hn + j] + FORGET_BIAS);
            let o = sigmoid(zs[3u * hn + j]);
            let c = f * cs[j] + i * g;
            let h = o * tanh(c);
            cs[j] = c;
            hs[j] = h;
            out[base + j] = h;
            out[base + hn + j] = c;
        }
        workgroupBarrier();
    }
    for (var t = l; t < p.steps; t++) {
        for (var j = lane; j < 2u * hn; j += 64u) {
            out[(b * p.steps + t) * 2u * hn + j] = 0.0;
        }
    }
}

@compute @workgroup_size(64)
fn lstm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    let b = wid.x + wid.y * nwg.x;
    let hn = p.hidden;
    let g4 = 4u * hn;
    if (b >= p.batch) {
        return;
    }
    let l = sequence_length(b, lane);
    for (var j = lane; j < hn; j += 64u) {
        dh[j] = 0.0;
        cs[j] = 0.0; // the gradient reaching c from the later steps
    }
    workgroupBarrier();
    for (var k = 0u; k < l; k++) {
        // The forward scan's steps in reverse.
        let t = step_at(l - 1u - k, l);
        let first = select(t == 0u, t + 1u == l, BACKWARDS);
        // The step before t in the scan (t itself at the first, where h0 and c0 stand).
        let prev = select(select(t - 1u, t + 1u, BACKWARDS), t, first);
        let before = (b * p.steps + prev) * 2u * hn;
        // hs: the state before step t.
        for (var j = lane; j < hn; j += 64u) {
            hs[j] = select(state[before + j], h0[b * hn + j], first);
        }
        workgroupBarrier();
        gates(b, t, lane);
        workgroupBarrier();
        let at = (b * p.steps + t) * 2u * hn;
        let base = (b * p.steps + t) * 6u * hn;
        for (var j = lane; j < hn; j += 64u) {
            let g = tanh(zs[j]);
            let i = sigmoid(zs[hn + j]);
            let f = sigmoid(zs[2u * hn + j] + FORGET_BIAS);
            let o = sigmoid(zs[3u * hn + j]);
            let c_prev = select(state[before + hn + j], c0[b * hn + j], first);
            let tc = tanh(state[at + hn + j]);
            let dht = grad[at + j] + dh[j];
            let dct = grad[at + hn + j] + cs[j] + dht * o * (1.0 - tc * tc);
            let dzg = dct * i * (1.0 - g * g);
            let dzi = dct * g * i * (1.0 - i);
            let dzf = dct * c_prev * f * (1.0 - f);
            let dzo = dht * tc * o * (1.0 - o);
            out[base + j] = dzg;
            out[base + hn + j] = dzi;
            out[base + 2u * hn + j] = dzf;
            out[base + 3u * hn + j] = dzo;
            // This lane's own gates: overwritten with their gradients for the product below.
            zs[j] = dzg;
            zs[hn + j] = dzi;
            zs[2u * hn + j] = dzf;
            zs[3u * hn + j] = dzo;
            cs[j] = dct * f;
        }
        workgroupBarrier();
        // The gradient reaching the previous h: dz · Uᵀ.
        for (var j = lane; j < hn; j += 64u) {
            var acc = 0.0;
            for (var q = 0u; q < g4; q++) {
                acc += zs[q] * u[j * g4 + q];
            }
            dh[j] = acc;
            out[base + 4u * hn + j] = acc;
            out[base + 5u * hn + j] = cs[j];
        }
        workgroupBarrier();
    }
    for (var t = l; t < p.steps; t++) {
        for (var j = lane; j < 6u * hn; j += 64u) {
            out[(b * p.steps + t) * 6u * hn + j] = 0.0;
        }
    }
}
