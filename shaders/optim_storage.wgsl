// optim.wgsl's operands read from the storage buffers they live in (w, s1 and s2 are
// declared there, written in place).

@group(0) @binding(1) var<storage, read> g: array<vec4<elem>>;

fn load_g(i: u32) -> vec4<f32> {
    return vec4<f32>(g[i]);
}

fn load_w(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i]);
}

fn load_s1(i: u32) -> vec4<f32> {
    return vec4<f32>(s1[i]);
}

fn load_s2(i: u32) -> vec4<f32> {
    return vec4<f32>(s2[i]);
}

