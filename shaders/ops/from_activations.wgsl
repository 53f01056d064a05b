// A tensor of the graph's activation type as f32 (the UNet's eps, which the sampler reads): a
// copy in f32 graphs (never made there), exact in f16 graphs (every f16 is an f32).

#include "activation.wgsl"

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index < params.count) {
    output[index] = f32(input[index]);
  }
}
