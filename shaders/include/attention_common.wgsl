// What both attention kernels share (attention.wgsl for software drivers, attention_chunked.wgsl
// for GPUs): softmax(q k^T * scale) v for every (image, head), read straight from the q/k/v
// projection (one NCHW tensor of 3C channels: channel b * 3C + part * C + head * D + e is a plane
// of L = H * W positions) and written in NCHW (channel b * C + head * D + e), where the output
// projection reads it.
//
// One invocation computes 4 consecutive query positions (a vec4 of each plane) over output
// channels e0 .. e1 of its head, walking the keys 16 at a time with an online softmax: a running
// maximum and sum per query, the accumulated output rescaled whenever the maximum grows. The
// scores of a step live in registers (16 vec4s, one per key, over the 4 queries). The variants
// differ in where the output so far lives between steps.
//
// Planes a multiple of 4 long are read as vec4s; others one value at a time, clamped to the
// plane. Keys past the end get no weight; queries past the end are computed but not stored.

#include "activation.wgsl"

const KEYS: u32 = 16u;  // keys per step: four vec4s of a plane

struct Params {
  length: u32,        // L = H * W
  head_dim: u32,      // D
  heads: u32,
  channels: u32,      // C = heads * D
  query_blocks: u32,  // ceil(L / 4)
  chunk: u32,         // output channels per invocation
  chunks: u32,        // ceil(D / chunk)
  invocations: u32,   // batch * heads * query_blocks * chunks
  scale: f32,         // 1 / sqrt(D)
  aligned: u32,       // L % 4 == 0: planes are read as vec4s
}

@group(0) @binding(0) var<storage, read> qkv: array<act>;
@group(0) @binding(1) var<storage, read> qkv4: array<vec4<act>>;  // the same tensor, as vec4s

// Positions p .. p + 3 of the plane that starts at `start`, clamped to the plane.
fn plane4(start: u32, p: u32) -> vec4<f32> {
  let last = params.length - 1u;
  if (params.aligned != 0u) {
    // start and p are multiples of 4, and so is L: the clamped quad is whole and in the plane.
    return vec4<f32>(qkv4[(start + min(p, last - 3u)) >> 2u]);
  }
  return vec4<f32>(f32(qkv[start + min(p, last)]), f32(qkv[start + min(p + 1u, last)]), f32(qkv[start + min(p + 2u, last)]),
                   f32(qkv[start + min(p + 3u, last)]));
}

// What invocation `index` computes: where its planes start, its 4 queries, its output channels.
struct Work {
  q_start: u32,
  k_start: u32,
  v_start: u32,
  o_start: u32,
  i0: u32,
  e0: u32,
  e1: u32,
}

fn work_of(index: u32) -> Work {
  let L = params.length;
  let D = params.head_dim;
  let C = params.channels;
  let part = index % params.chunks;
  let query_block = (index / params.chunks) % params.query_blocks;
  let item = index / (params.chunks * params.query_blocks);  // image * heads + head
  let image = item / params.heads;
  let head = item % params.heads;
  let q_start = (image * 3u * C + head * D) * L;
  let e0 = part * params.chunk;
  return Work(q_start, q_start + C * L, q_start + 2u * C * L, (image * C + head * D) * L, query_block * 4u, e0,
              min(e0 + params.chunk, D));
}

// One step over keys j0 .. j0 + 15: their softmax weights for the 4 queries, normalised by the new
// running sum, and `keep`, the factor that renormalises the output so far. Updates peak and total.
struct KeyStep {
  weights: array<vec4<f32>, 16>,
  keep: vec4<f32>,
}

fn key_step(w: Work, j0: u32, peak: ptr<function, vec4<f32>>, total: ptr<function, vec4<f32>>) -> KeyStep {
  let L = params.length;
  // s[j]: the scores of key j0 + j for the 4 queries. Zeroed explicitly: relying on the zero
  // initialisation of a `var` declared in a loop kept the last step's scores on Dawn + lavapipe.
  var s: array<vec4<f32>, 16>;
  for (var j = 0u; j < KEYS; j++) {
    s[j] = vec4<f32>(0.0);
  }
  for (var e = 0u; e < params.head_dim; e++) {
    let q = plane4(w.q_start + e * L, w.i0) * params.scale;
    let row = w.k_start + e * L;
    for (var c = 0u; c < 4u; c++) {
      let k = plane4(row, j0 + 4u * c);
      s[4u * c] = fma(q, vec4<f32>(k.x), s[4u * c]);
      s[4u * c + 1u] = fma(q, vec4<f32>(k.y), s[4u * c + 1u]);
      s[4u * c + 2u] = fma(q, vec4<f32>(k.z), s[4u * c + 2u]);
      s[4u * c + 3u] = fma(q, vec4<f32>(k.w), s[4u * c + 3u]);
    }
  }
  if (j0 + KEYS > L) {
    for (var j = 0u; j < KEYS; j++) {
      if (j0 + j >= L) {
        s[j] = vec4<f32>(-3.4e38);
      }
    }
  }
  var next = *peak;
  for (var j = 0u; j < KEYS; j++) {
    next = max(next, s[j]);
  }
  let decay = exp(*peak - next);
  var sum = vec4<f32>(0.0);
  for (var j = 0u; j < KEYS; j++) {
    s[j] = exp(s[j] - next);
    sum += s[j];
  }
  let next_total = *total * decay + sum;
  let inv = 1.0 / next_total;
  // The output so far, normalised by the old sum, and this step's weights, both by the new sum.
  let keep = *total * decay * inv;
  for (var j = 0u; j < KEYS; j++) {
    s[j] *= inv;
  }
  *peak = next;
  *total = next_total;
  return KeyStep(s, keep);
}

// Output channel e's contribution of one step: sum over its 16 keys of weight * v.
fn weighted_values(w: Work, step: KeyStep, e: u32, j0: u32) -> vec4<f32> {
  let row = w.v_start + e * params.length;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    let v = plane4(row, j0 + 4u * c);
    acc = fma(step.weights[4u * c], vec4<f32>(v.x), acc);
    acc = fma(step.weights[4u * c + 1u], vec4<f32>(v.y), acc);
    acc = fma(step.weights[4u * c + 2u], vec4<f32>(v.z), acc);
    acc = fma(step.weights[4u * c + 3u], vec4<f32>(v.w), acc);
  }
  return acc;
}

// Queries p .. p + 3 (those inside the plane) of the output.
fn store_output(start: u32, p: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    if (p + i < params.length) {
      out[start + p + i] = act(v[i]);
    }
  }
}
