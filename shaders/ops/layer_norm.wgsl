// LayerNorm over the last dimension of a token-major tensor [rows, dim] (a transformer's tokens):
// y = (x - mean) / sqrt(var + eps) * gamma + beta per row, the biased variance as torch takes it.
// One invocation per row; the mean first, then the squared deviations from it (two passes over a
// row of a few hundred values, free of the cancellation of E[x^2] - E[x]^2).

#include "activation.wgsl"

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> gamma: array<act>;
@group(0) @binding(2) var<storage, read> beta: array<act>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = gid.x + gid.y * groups.x * 64u;
  if (row >= params.rows) {
    return;
  }
  let start = row * params.dim;
  var sum = 0.0;
  for (var i = 0u; i < params.dim; i++) {
    sum += f32(input[start + i]);
  }
  let mean = sum / f32(params.dim);
  var squares = 0.0;
  for (var i = 0u; i < params.dim; i++) {
    let d = f32(input[start + i]) - mean;
    squares = fma(d, d, squares);
  }
  let inv_std = inverseSqrt(squares / f32(params.dim) + params.eps);
  for (var i = 0u; i < params.dim; i++) {
    let y = (f32(input[start + i]) - mean) * inv_std;
    output[start + i] = act(fma(y, f32(gamma[i]), f32(beta[i])));
  }
}
