// diffusers' GEGLU over the tokens of a token-major tensor: one nn.Linear x [rows, in] times
// weight [2 * out, in] (PyTorch's layout) plus bias [2 * out], split in two halves along the
// features, the first (hidden) times the exact gelu of the second (gate):
//   y[r, o] = (x[r] . weight[o] + bias[o]) * gelu(x[r] . weight[out + o] + bias[out + o])
// Both halves are computed by the same invocation, so the 2 * out projection is never stored.
// One invocation per output element; speed is for later.

#include "activation.wgsl"
#include "gelu.wgsl"

struct Params {
  rows: u32,
  in_features: u32,
  out_features: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> weight: array<weight_t>;
@group(0) @binding(2) var<storage, read> bias: array<act>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= params.rows * params.out_features) {
    return;
  }
  let o = index % params.out_features;
  let row = index / params.out_features;
  let x_row = row * params.in_features;
  let hidden_row = o * params.in_features;
  let gate_row = (params.out_features + o) * params.in_features;
  var hidden = 0.0;
  var gate = 0.0;
  for (var i = 0u; i < params.in_features; i++) {
    let x = f32(input[x_row + i]);
    hidden = fma(x, f32(weight[hidden_row + i]), hidden);
    gate = fma(x, f32(weight[gate_row + i]), gate);
  }
  hidden += f32(bias[o]);
  gate += f32(bias[params.out_features + o]);
  output[index] = act(hidden * gelu(gate));
}
