// softmax(scale * q^T k) for single- or multi-head self-attention over NCHW projections:
//   probs[n, h, i, j] = softmax_j(scale * sum_d q[n, h*D + d, i] * k[n, h*D + d, j])
// One workgroup per query row. Each invocation writes its scores to the output, the row's max
// and sum are reduced in workgroup memory, then each invocation rescales the entries it wrote
// (so the row length is not bounded by workgroup memory).

const WORKGROUP: u32 = 64u;

struct Params {
  batch: u32,
  heads: u32,
  head_dim: u32,
  length: u32,   // height * width
  scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WORKGROUP>;

fn reduce_max(value: f32, lid: u32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid] = max(partial[lid], partial[lid + stride]);
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

fn reduce_sum(value: f32, lid: u32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x;
  let head = wid.y;
  let n = wid.z;
  let L = params.length;
  let channel0 = head * params.head_dim;
  let qk_base = (n * params.heads * params.head_dim + channel0) * L;
  let row = ((n * params.heads + head) * L + i) * L;

  var row_max = -3.4e38;
  for (var j = lid; j < L; j += WORKGROUP) {
    var s = 0.0;
    for (var d = 0u; d < params.head_dim; d++) {
      s = fma(q[qk_base + d * L + i], k[qk_base + d * L + j], s);
    }
    s *= params.scale;
    probs[row + j] = s;
    row_max = max(row_max, s);
  }
  row_max = reduce_max(row_max, lid);

  var sum = 0.0;
  for (var j = lid; j < L; j += WORKGROUP) {
    let e = exp(probs[row + j] - row_max);
    probs[row + j] = e;
    sum += e;
  }
  let inv_sum = 1.0 / reduce_sum(sum, lid);
  for (var j = lid; j < L; j += WORKGROUP) {
    probs[row + j] *= inv_sum;
  }
}
