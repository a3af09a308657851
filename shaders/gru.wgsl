// GRU scans over [batch, steps, ..] sequences, one workgroup per sequence looping over its
// steps (as recurrence.wgsl does for the LSTM), in CNTK's convention:
//   z = σ(x·Wz + h·Uz),  r = σ(x·Wr + h·Ur),  c = tanh(x·Wc + (r ⊙ h)·Uc),
//   h' = (1 - z) ⊙ c + z ⊙ h,
// with the input projections given as xproj = [z | r | c] (3H, bias included) and U = [Uz |
// Ur | Uc] ([H, 3H]). gru_forward writes h per step ([batch, steps, H]); gru_backward walks
// the steps in reverse and writes per step the gradient of xproj (3H), the gradient reaching
// the previous h (H), and r ⊙ h (H, for Uc's gradient): [batch, steps, 5H].

const MAX_HIDDEN: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xproj: array<elem>;
@group(0) @binding(2) var<storage, read> u: array<elem>;
@group(0) @binding(3) var<storage, read> h0: array<elem>;
@group(0) @binding(4) var<storage, read> lengths: array<elem>;
// gru_backward only: the forward states, then their incoming gradient.
@group(0) @binding(5) var<storage, read> state: array<elem>;
@group(0) @binding(6) var<storage, read> grad: array<elem>;
@group(0) @binding(7) var<storage, read_write> out: array<elem>;

var<workgroup> hs: array<f32, MAX_HIDDEN>;
var<workgroup> rh: array<f32, MAX_HIDDEN>;
var<workgroup> dc: array<f32, MAX_HIDDEN>;
var<workgroup> dhn: array<f32, MAX_HIDDEN>;
var<workgroup> dhp: array<f32, MAX_HIDDEN>;
var<workgroup> zr: array<f32, 512>;
var<workgroup> dzr: array<f32, 512>;

// zr[q] = xproj[b, t, q] + Σ_j hs[j] · u[j, q] for the z and r blocks (q < 2H).
fn update_and_reset(b: u32, t: u32, lane: u32) {
    let g3 = 3u * p.hidden;
    for (var q = lane; q < 2u * p.hidden; q += 64u) {
        var v = xproj[(b * p.steps + t) * g3 + q];
        for (var j = 0u; j < p.hidden; j++) {
            v += hs[j] * u[j * g3 + q];
        }
        zr[q] = v;
    }
}

// rh[j] = σ(r pre-activation) · hs[j].
fn reset_state(lane: u32) {
    for (var j = lane; j < p.hidden; j += 64u) {
        rh[j] = sigmoid(zr[p.hidden + j]) * hs[j];
    }
}

// The candidate c for unit q: tanh(xproj[b, t, 2H + q] + Σ_j rh[j] · Uc[j, q]).
fn candidate(b: u32, t: u32, q: u32) -> f32 {
    let g3 = 3u * p.hidden;
    var v = xproj[(b * p.steps + t) * g3 + 2u * p.hidden + q];
    for (var j = 0u; j < p.hidden; j++) {
        v += rh[j] * u[j * g3 + 2u * p.hidden + q];
    }
    return tanh(v);
}

@compute @workgroup_size(64)
fn gru_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
        update_and_reset(b, t, lane);
        workgroupBarrier();
        reset_state(lane);
        workgroupBarrier();
        for (var q = lane; q < hn; q += 64u) {
            let z = sigmoid(zr[q]);
            let h = (1.0 - z) * candidate(b, t, q) + z * hs[q];
            dc[q] = h;
            out[(b * p.steps + t) * hn + q] = h;
        }
        workgroupBarrier();
        for (var q = lane; q < hn; q += 64u) {
            hs[q] = dc[q];
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
fn gru_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lane: u32) {
    let b = wid.x + wid.y * nwg.x;
    if (b >= p.batch) {
        return;
    }
    let hn = p.hidden;
    let g3 = 3u * hn;
    let l = sequence_length(b, lane);
    for (var j = lane; j < hn; j += 64u) {
        dhn[j] = 0.0;
    }
    workgroupBarrier();
    for (var k = 0u; k < l; k++) {
        let t = step_at(l - 1u - k, l);
        let first = select(t == 0u, t + 1u == l, BACKWARDS);
        let prev = select(select(t - 1u, t + 1u, BACKWARDS), t, first);
        for (var j = lane; j < hn; j += 64u) {
            hs[j] = select(state[(b * p.steps + prev) * hn + j], h0[b * hn + j], first);
        }
        workgroupBarrier();
        update_and_reset(b, t, lane);
        workgroupBarrier();
        reset_state(lane);
        workgroupBarrier();
        let base = (b * p.steps + t) * 5u * hn;
        for (var q = lane; q < hn; q += 64u) {
            let c = candidate(b, t, q);
            let z = sigmoid(zr[q]);
            let dh = grad[(b * p.steps + t) * hn + q] + dhn[q];
            dc[q] = dh * (1.0 - z) * (1.0 - c * c);
            dzr[q] = dh * (hs[q] - c) * z * (1.0 - z);
            dhp[q] = dh * z;
        }
        workgroupBarrier();
        for (var j = lane; j < hn; j += 64u) {
            // The gradient of r ⊙ h: dc · Ucᵀ.
            var drh = 0.0;
            for (var q = 0u; q < hn; q++) {
                drh += dc[q] * u[j * g3 + 2u * hn + q];
            }
            let r = sigmoid(zr[hn + j]);
            dzr[hn + j] = drh * hs[j] * r * (1.0 - r);
            dhp[j] += drh * r;
        }
        workgroupBarrier();
        for (var j = lane; j < hn; j += 64u) {
            var acc = dhp[j];
            for (var q = 0u; q < 2u * hn; q++) {
                acc += dzr[q] * u[j * g3 + q];
            }
            out[base + j] = dzr[j];
            out[base + hn + j] = dzr[hn + j];
            out[base + 2u * hn + j] = dc[j];
            out[base + 3u * hn + j] = acc;
            out[base + 4u * hn + j] = rh[j];
            dhn[j] = acc;
        }
        workgroupBarrier();
    }
    for (var t = l; t < p.steps; t++) {
        for (var j = lane; j < 5u * hn; j += 64u) {
            out[(b * p.steps + t) * 5u * hn + j] = 0.0;
        }
    }
}
