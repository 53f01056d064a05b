// GroupNorm over NCHW with an optional SiLU fused after the affine transform.
// One workgroup per (group, batch item). Mean first, then the variance as the mean of squared
// deviations (two passes over the group: no catastrophic cancellation of E[x^2] - E[x]^2).

const WORKGROUP: u32 = 256u;

struct Params {
  channels: u32,
  groups: u32,
  spatial: u32,    // height * width
  eps: f32,
  silu: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> partial: array<f32, WORKGROUP>;

fn workgroup_sum(value: f32, lid: u32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x;
  let n = wid.y;
  let channels_per_group = params.channels / params.groups;
  let count = channels_per_group * params.spatial;
  let base = (n * params.channels + group * channels_per_group) * params.spatial;

  var sum = 0.0;
  for (var i = lid; i < count; i += WORKGROUP) {
    sum += input[base + i];
  }
  let mean = workgroup_sum(sum, lid) / f32(count);

  var squares = 0.0;
  for (var i = lid; i < count; i += WORKGROUP) {
    let d = input[base + i] - mean;
    squares = fma(d, d, squares);
  }
  let variance = workgroup_sum(squares, lid) / f32(count);
  let inv_std = inverseSqrt(variance + params.eps);

  for (var i = lid; i < count; i += WORKGROUP) {
    let c = group * channels_per_group + i / params.spatial;
    var v = (input[base + i] - mean) * inv_std * gamma[c] + beta[c];
    if (params.silu != 0u) {
      v = v / (1.0 + exp(-v));
    }
    output[base + i] = v;
  }
}
