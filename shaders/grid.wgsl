// The launch uniform and invocation index of the window kernels (conv.wgsl, pool.wgsl):
// only the batch size, which changes between calls, comes in the uniform.

struct Win {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Win;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
