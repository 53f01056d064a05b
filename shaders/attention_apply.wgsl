// out[n, h*D + d, i] = sum_j probs[n, h, i, j] * v[n, h*D + d, j]: the attention-weighted values,
// written straight back in NCHW so the output projection is a 1x1 convolution.

struct Params {
  batch: u32,
  heads: u32,
  head_dim: u32,
  length: u32,
}

@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let c = gid.y;              // channel = head * head_dim + d
  let n = gid.z;
  let L = params.length;
  if (i >= L || c >= params.heads * params.head_dim || n >= params.batch) {
    return;
  }
  let head = c / params.head_dim;
  let row = ((n * params.heads + head) * L + i) * L;
  let v_row = (n * params.heads * params.head_dim + c) * L;
  var acc = 0.0;
  for (var j = 0u; j < L; j++) {
    acc = fma(probs[row + j], v[v_row + j], acc);
  }
  output[v_row + i] = acc;
}
