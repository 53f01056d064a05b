// Multi-head attention over token-major tensors: out = softmax(q k^T * scale) v per (image, head),
// queries from one tensor and keys and values from others (cross-attention), each a column range
// of rows of a [batch, tokens, width] tensor: token t's head h of q is
//   q[(image * query_length + t) * q_stride + q_offset + h * head_dim + e], e < head_dim,
// so q, k and v may lie side by side in one fused projection. The output is [batch, query_length,
// heads * head_dim], head h in columns h * head_dim ... With `causal`, query i sees keys 0 ..= i.
//
// One invocation per (image, head, query, chunk of up to CHUNK output columns), walking the keys
// with an online softmax (a running maximum and sum, the output so far rescaled when the maximum
// grows): no score matrix is stored. Each chunk recomputes the scores of its query; speed is for
// later.

#include "activation.wgsl"

const CHUNK: u32 = 16u;

struct Params {
#include "token_attention_params.wgsl"
  chunks: u32,       // ceil(head_dim / CHUNK)
  invocations: u32,  // batch * heads * query_length * chunks
}

@group(0) @binding(0) var<storage, read> q: array<act>;
@group(0) @binding(1) var<storage, read> k: array<act>;
@group(0) @binding(2) var<storage, read> v: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= params.invocations) {
    return;
  }
  let D = params.head_dim;
  let part = index % params.chunks;
  let query = (index / params.chunks) % params.query_length;
  let item = index / (params.chunks * params.query_length);  // image * heads + head
  let head = item % params.heads;
  let image = item / params.heads;
  let q_start = (image * params.query_length + query) * params.q_stride + params.q_offset + head * D;
  let e0 = part * CHUNK;
  let count = min(CHUNK, D - e0);
  var keys = params.key_length;
  if (params.causal != 0u) {
    keys = min(keys, query + 1u);
  }

  // Zeroed explicitly: a `var` declared in a loop once kept its last values on Dawn + lavapipe.
  var acc: array<f32, CHUNK>;
  for (var e = 0u; e < CHUNK; e++) {
    acc[e] = 0.0;
  }
  var peak = -3.4e38;  // the running maximum score
  var total = 0.0;     // the running sum of exp(score - peak)
  for (var j = 0u; j < keys; j++) {
    let key_row = image * params.key_length + j;
    let k_start = key_row * params.k_stride + params.k_offset + head * D;
    var score = 0.0;
    for (var e = 0u; e < D; e++) {
      score = fma(f32(q[q_start + e]), f32(k[k_start + e]), score);
    }
    score *= params.scale;
    let next = max(peak, score);
    let decay = exp(peak - next);
    let weight = exp(score - next);
    total = fma(total, decay, weight);
    peak = next;
    let v_start = key_row * params.v_stride + params.v_offset + head * D + e0;
    for (var e = 0u; e < count; e++) {
      acc[e] = fma(acc[e], decay, weight * f32(v[v_start + e]));
    }
  }
  let inv = 1.0 / total;
  let o_start = (image * params.query_length + query) * params.heads * D + head * D + e0;
  for (var e = 0u; e < count; e++) {
    out[o_start + e] = act(acc[e] * inv);
  }
}
