// VQModel's quantizer (diffusers' VectorQuantizer): each position of z [N, C, H, W] snaps to its
// nearest codebook vector by Euclidean distance, argmin over the codes (the first of equal ones, as
// torch.argmin), and the output holds that vector: out[n, :, y, x] = codebook[index]. One
// invocation per position, the distances in f32 from the codebook kept in f32 whatever the graph's
// precision, so the choice does not depend on how the activations are stored.

#include "activation.wgsl"

struct Params {
  batch: u32,
  channels: u32,
  spatial: u32,   // height * width
  codes: u32,
}

@group(0) @binding(0) var<storage, read> z: array<act>;
@group(0) @binding(1) var<storage, read> codebook: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;
@group(0) @binding(3) var<storage, read_write> indices: array<i32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let position = gid.y * groups.x * 64u + gid.x;
  if (position >= params.batch * params.spatial) {
    return;
  }
  let n = position / params.spatial;
  let p = position % params.spatial;
  let base = n * params.channels * params.spatial + p;
  var best = 0u;
  var best_distance = 0.0;
  for (var k = 0u; k < params.codes; k++) {
    var distance = 0.0;
    for (var c = 0u; c < params.channels; c++) {
      let d = f32(z[base + c * params.spatial]) - codebook[k * params.channels + c];
      distance = fma(d, d, distance);
    }
    if (k == 0u || distance < best_distance) {
      best = k;
      best_distance = distance;
    }
  }
  for (var c = 0u; c < params.channels; c++) {
    output[base + c * params.spatial] = act(codebook[best * params.channels + c]);
  }
  indices[position] = i32(best);
}
