// y[n, o] = act_out(sum_i act_in(x[n, i]) * weight[o, i] + bias[o]), act = SiLU where enabled.
// The time-embedding MLP and each resnet's time_emb_proj(silu(temb)) are tiny: one invocation
// per output element is enough.

#include "activation.wgsl"

struct Params {
  batch: u32,
  in_features: u32,
  out_features: u32,
  silu_input: u32,
  silu_output: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> weight: array<weight_t>;
@group(0) @binding(2) var<storage, read> bias: array<act>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o = gid.x;
  let n = gid.y;
  if (o >= params.out_features || n >= params.batch) {
    return;
  }
  var acc = 0.0;
  let x_row = n * params.in_features;
  let w_row = o * params.in_features;
  for (var i = 0u; i < params.in_features; i++) {
    var x = f32(input[x_row + i]);
    if (params.silu_input != 0u) {
      x = silu(x);
    }
    acc = fma(x, f32(weight[w_row + i]), acc);
  }
  var y = acc + f32(bias[o]);
  if (params.silu_output != 0u) {
    y = silu(y);
  }
  output[n * params.out_features + o] = act(y);
}
