// An f32 tensor (the UNet's input sample) as the graph's activation type: a copy in f32 graphs
// (never made there), a rounding to f16 in f16 graphs.

#include "activation.wgsl"

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<act>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index < params.count) {
    output[index] = act(input[index]);
  }
}
