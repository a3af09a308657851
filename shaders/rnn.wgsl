// Plain (Elman) RNN scans over [batch, steps, ..] sequences, one workgroup per sequence
// looping over its steps (as recurrence.wgsl does for the LSTM): h' = tanh(xproj + h·U),
// xproj = x·W + b given for every step. rnn_forward writes h per step ([batch, steps, H]);
// rnn_backward walks the steps in reverse and writes per step the gradient of the
// pre-activation (H) and the gradient reaching the previous h (H): [batch, steps, 2H].

const MAX_HIDDEN: u32 = 512u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xproj: array<elem>;
@group(0) @binding(2) var<storage, read> u: array<elem>;
@group(0) @binding(3) var<storage, read> h0: array<elem>;
@group(0) @binding(4) var<storage, read> lengths: array<elem>;
// rnn_backward only: the forward states, then their incoming gradient.
@group(0) @binding(5) var<storage, read> state: array<elem>;
@group(0) @binding(6) var<storage, read> grad: array<elem>;
@group(0) @binding(7) var<storage, read_write> out: array<elem>;

var<workgroup> hs: array<f32, MAX_HIDDEN>;
var<workgroup> next: array<f32, MAX_HIDDEN>;
var<workgroup> dh: array<f32, MAX_HIDDEN>;

@compute @workgroup_size(64)
fn rnn_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lane: u32) {
    let b = wid.x + wid.y * nwg.x;
    if (b >= p.batch) {
        return;
    }
    let hn = p.hidden;
    let l = sequence_length(b, lane);
    for (var j = lane; j < hn; j += 64u) {
        hs[j] = h0[b * hn + j];
    }
    workgroupBarrier();
    for (var k = 0u; k < l; k++) {
        let t = step_at(k, l);
        for (var q = lane; q < hn; q += 64u) {
            var v = xproj[(b * p.steps + t) * hn + q];
            for (var j = 0u; j < hn; j++) {
                v += hs[j] * u[j * hn + q];
            }
            next[q] = tanh(v);
            out[(b * p.steps + t) * hn + q] = next[q];
        }
        workgroupBarrier();
        for (var q = lane; q < hn; q += 64u) {
            hs[q] = next[q];
        }
        workgroupBarrier();
    }
    for (var t = l; t < p.steps; t++) {
        for (var j = lane; j < hn; j += 64u) {
            out[(b * p.steps + t) * hn + j] = 0.0;
        }
    }
}

@compute @workgroup_size(64)
fn rnn_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lane: u32) {
    let b = wid.x + wid.y * nwg.x;
    if (b >= p.batch) {
        return;
    }
    let hn = p.hidden;
    let l = sequence_length(b, lane);
    for (var j = lane; j < hn; j += 64u) {
        dh[j] = 0.0;
    }
    workgroupBarrier();
    for (var k = 0u; k < l; k++) {
        let t = step_at(l - 1u - k, l);
        let at = (b * p.steps + t) * hn;
        // The pre-activation's gradient: (incoming + carried) · (1 - h²).
        for (var q = lane; q < hn; q += 64u) {
            let h = state[at + q];
            let dz = (grad[at + q] + dh[q]) * (1.0 - h * h);
            next[q] = dz;
            out[(b * p.steps + t) * 2u * hn + q] = dz;
        }
        workgroupBarrier();
        // What reaches the previous h: dz · Uᵀ.
        for (var j = lane; j < hn; j += 64u) {
            var acc = 0.0;
            for (var q = 0u; q < hn; q++) {
                acc += next[q] * u[j * hn + q];
            }
            dh[j] = acc;
            out[(b * p.steps + t) * 2u * hn + hn + j] = acc;
        }
        workgroupBarrier();
    }
    for (var t = l; t < p.steps; t++) {
        for (var j = lane; j < 2u * hn; j += 64u) {
            out[(b * p.steps + t) * 2u * hn + j] = 0.0;
        }
    }
}
