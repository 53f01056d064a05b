// A batch of matrices transposed: input [batch, rows, cols] -> output [batch, cols, rows]. The
// UNet's transformer blocks (Transformer2DModel) turn an NCHW feature map, [N, C, H*W], into
// tokens, [N, H*W, C], and back. One invocation per output element; speed is for later.

#include "activation.wgsl"

struct Params {
  batch: u32,
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<act>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  let plane = params.rows * params.cols;
  if (index >= params.batch * plane) {
    return;
  }
  let image = index / plane;
  let within = index % plane;
  // Output row `col` holds input column `col`.
  let col = within / params.rows;
  let row = within % params.rows;
  output[index] = input[image * plane + row * params.cols + col];
}
