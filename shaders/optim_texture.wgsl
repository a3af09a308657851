// optim.wgsl's operands read from rgba32float copies of them, made just before the update's
// check pass (src/plan/emit.rs): texel t holds vec4 t of the update's range, at
// (t % TEXTURE_WIDTH, t / TEXTURE_WIDTH). The rules still write w, s1 and s2 in storage.

@group(0) @binding(1) var g_texels: texture_2d<f32>;
@group(0) @binding(9) var w_texels: texture_2d<f32>;
@group(0) @binding(10) var s1_texels: texture_2d<f32>;
@group(0) @binding(11) var s2_texels: texture_2d<f32>;

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH);
}

fn load_g(i: u32) -> vec4<f32> {
    return textureLoad(g_texels, texel(i), 0);
}

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(w_texels, texel(i), 0);
}

fn load_s1(i: u32) -> vec4<f32> {
    return textureLoad(s1_texels, texel(i), 0);
}

fn load_s2(i: u32) -> vec4<f32> {
    return textureLoad(s2_texels, texel(i), 0);
}

