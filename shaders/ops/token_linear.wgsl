// A linear layer over the tokens of a token-major tensor: x [rows, in] (rows = batch * tokens)
// times weight [out, in] (PyTorch's nn.Linear layout) plus bias, then an optional activation,
// then an optional residual [rows, out]:
//   y[r, o] = activation(sum_i x[r, i] * weight[o, i] + bias[o]) + residual[r, o]
// Activations: 0 none, 1 quick_gelu x * sigmoid(1.702 x) (CLIP), 2 gelu 0.5 x (1 + erf(x / sqrt 2))
// (torch's exact form). One invocation per output element; speed is for later.

#include "activation.wgsl"
#include "gelu.wgsl"

struct Params {
  rows: u32,
  in_features: u32,
  out_features: u32,
  activation: u32,
  has_bias: u32,
  has_residual: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> weight: array<weight_t>;
@group(0) @binding(2) var<storage, read> bias: array<act>;
@group(0) @binding(3) var<storage, read> residual: array<act>;
@group(0) @binding(4) var<storage, read_write> output: array<act>;
@group(0) @binding(5) var<uniform> params: Params;

fn activate(x: f32) -> f32 {
  if (params.activation == 1u) {
    // x / (1 + exp(-1.702 x)): exp overflows to inf for very negative x, giving the right 0.
    return x / (1.0 + exp(-1.702 * x));
  }
  if (params.activation == 2u) {
    return gelu(x);
  }
  return x;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= params.rows * params.out_features) {
    return;
  }
  let o = index % params.out_features;
  let row = index / params.out_features;
  let x_row = row * params.in_features;
  let w_row = o * params.in_features;
  var acc = 0.0;
  for (var i = 0u; i < params.in_features; i++) {
    acc = fma(f32(input[x_row + i]), f32(weight[w_row + i]), acc);
  }
  if (params.has_bias != 0u) {
    acc += f32(bias[o]);
  }
  var y = activate(acc);
  if (params.has_residual != 0u) {
    y += f32(residual[index]);
  }
  output[index] = act(y);
}
