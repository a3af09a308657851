// What the recurrent scans share (prepended to recurrence.wgsl and gru.wgsl): the direction,
// the logistic function, and each sequence's length as a workgroup-uniform value (the files
// declare `lengths`).

override BACKWARDS: bool = false;

var<workgroup> len_shared: u32;

// Logistic function that never overflows: exp is only taken of non-positive numbers.
fn sigmoid(v: f32) -> f32 {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// The length of sequence b, uniform across the workgroup (so that loops over the steps may
// hold barriers).
fn sequence_length(b: u32, lane: u32) -> u32 {
    if (lane == 0u) {
        len_shared = u32(lengths[b]);
    }
    return workgroupUniformLoad(&len_shared);
}

// The step of the k-th iteration of a scan over l steps.
fn step_at(k: u32, l: u32) -> u32 {
    return select(k, l - 1u - k, BACKWARDS);
}
