// The launch uniform and invocation index of the window kernels (conv.wgsl, pool.wgsl):
// only the batch size, which changes between calls, comes in the uniform.

@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
