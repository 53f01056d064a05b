// Channel concatenation of two NCHW tensors (a U-Net skip connection): out = [a, b] along C.

#include "activation.wgsl"

struct Params {
  batch: u32,
  channels_a: u32,
  channels_b: u32,
  spatial: u32,
}

@group(0) @binding(0) var<storage, read> a: array<act>;
@group(0) @binding(1) var<storage, read> b: array<act>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let channels = params.channels_a + params.channels_b;
  let total = params.batch * channels * params.spatial;
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= total) {
    return;
  }
  let s = index % params.spatial;
  let c = (index / params.spatial) % channels;
  let n = index / (params.spatial * channels);
  if (c < params.channels_a) {
    output[index] = a[(n * params.channels_a + c) * params.spatial + s];
  } else {
    output[index] = b[(n * params.channels_b + (c - params.channels_a)) * params.spatial + s];
  }
}
