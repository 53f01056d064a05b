// Token-major multi-head attention for software drivers (the body of
// shaders/ops/token_attention_registers*.wgsl, which define MAX_QUADS): out = softmax(q k^T * scale) v
// per (image, head), q, k and v column ranges of [batch, tokens, width] tensors read in place as
// token_attention.wgsl takes them (its header gives the layout), here as vec4s: the host picks this
// kernel only where head_dim, the strides and the offsets are multiples of 4. With `causal`, query
// i sees keys 0 ..= i.
//
// Register-blocked as token_linear.wgsl is, for the same reason (conv2d_main.wgsl's header: on
// llvmpipe an invocation is one lane of an 8-wide SIMD loop, a storage load costs as much as tens of
// multiply-adds, and a barrier suspends every lane group of the workgroup). A workgroup is one
// lane group of 8 invocations with no workgroup memory; it takes 8 blocks of 4 queries of one
// (image, head) (workgroup_id.y), so every k and v load has the same address in all lanes and
// feeds 4 queries per lane. Each invocation walks the keys 8 at a time:
//   1. the 4 x 8 scores, 8 k vec4s per 4 dims of the head (q kept in registers);
//   2. per query the block's maximum, the online-softmax update (the output so far and the sum
//      rescaled by exp(old max - new max)) and p = exp(score - max), masked keys weighing 0;
//   3. out += p v, 8 v vec4s per 4 output columns.
// The whole output row of each of the 4 queries stays in the invocation (MAX_QUADS vec4s each),
// so every score is computed once, and no score matrix is stored.

#include "activation.wgsl"
#include "token_blocks.wgsl"

const KEYS: u32 = 8u;  // keys per block
const LOWEST: f32 = -3.4e38;  // the score of a masked key, and the maximum before any key

struct Params {
#include "token_attention_params.wgsl"
  // (here q_stride .. v_offset count vec4s)
  query_blocks: u32,  // ceil(query_length / ROWS)
}

@group(0) @binding(0) var<storage, read> q: array<vec4<act>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<act>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<act>>;
@group(0) @binding(4) var<uniform> params: Params;

// The 8 keys' vec4s at column quad c; `rows` holds where each key's head starts (clamped to the last key).
fn key_quads(rows: array<u32, 8>, c: u32) -> Quads {
  return Quads(
    vec4<f32>(k[rows[0] + c]),
    vec4<f32>(k[rows[1] + c]),
    vec4<f32>(k[rows[2] + c]),
    vec4<f32>(k[rows[3] + c]),
    vec4<f32>(k[rows[4] + c]),
    vec4<f32>(k[rows[5] + c]),
    vec4<f32>(k[rows[6] + c]),
    vec4<f32>(k[rows[7] + c]),
  );
}

// The softmax update of one query over a block's scores `s` (scaled, masked keys LOWEST): the
// block's p in place of the scores, the factor for what came before, and the running max and sum.
struct Update {
  p: Outs,
  keep: f32,
  peak: f32,
  total: f32,
}

fn update(s: Outs, peak: f32, total: f32) -> Update {
  let m4 = max(s.lo, s.hi);
  let next = max(peak, max(max(m4.x, m4.y), max(m4.z, m4.w)));
  let keep = exp(peak - next);
  // A masked key weighs 0, also while every key so far was masked (next = LOWEST).
  let p = Outs(
    select(vec4<f32>(0.0), exp(s.lo - vec4<f32>(next)), s.lo > vec4<f32>(LOWEST)),
    select(vec4<f32>(0.0), exp(s.hi - vec4<f32>(next)), s.hi > vec4<f32>(LOWEST)),
  );
  let sums = p.lo + p.hi;
  return Update(p, keep, next, fma(total, keep, (sums.x + sums.y) + (sums.z + sums.w)));
}

// s * scale where key j0 + j is seen by `query`, else LOWEST.
fn masked(s: Outs, j0: u32, query: u32) -> Outs {
  var last = params.key_length;
  if (params.causal != 0u) {
    last = min(last, query + 1u);
  }
  let seen = vec4<u32>(last) > vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u);
  let seen_hi = vec4<u32>(last) > vec4<u32>(j0 + 4u, j0 + 5u, j0 + 6u, j0 + 7u);
  return Outs(
    select(vec4<f32>(LOWEST), s.lo * params.scale, seen),
    select(vec4<f32>(LOWEST), s.hi * params.scale, seen_hi),
  );
}

// a * keep + sum over the block's keys of p[j] * value quad j.
fn weigh(a: vec4<f32>, keep: f32, p: Outs, vq: Quads) -> vec4<f32> {
  var r = a * keep;
  r = fma(vq.w0, vec4<f32>(p.lo.x), r);
  r = fma(vq.w1, vec4<f32>(p.lo.y), r);
  r = fma(vq.w2, vec4<f32>(p.lo.z), r);
  r = fma(vq.w3, vec4<f32>(p.lo.w), r);
  r = fma(vq.w4, vec4<f32>(p.hi.x), r);
  r = fma(vq.w5, vec4<f32>(p.hi.y), r);
  r = fma(vq.w6, vec4<f32>(p.hi.z), r);
  r = fma(vq.w7, vec4<f32>(p.hi.w), r);
  return r;
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  // Lanes past the last block repeat it (their stores are skipped): no early return, so the
  // loops run unmasked. Queries past the last are read clamped and not stored.
  let query_block = min(gid.x, params.query_blocks - 1u);
  let item = wid.y;  // image * heads + head
  let head = item % params.heads;
  let image = item / params.heads;
  let quads = params.head_dim / 4u;
  let query0 = query_block * ROWS;
  let last_query = params.query_length - 1u;
  let q_head = params.q_offset + head * quads;
  let k_base = image * params.key_length;
  let k_head = params.k_offset + head * quads;
  let v_head = params.v_offset + head * quads;

  var q0: array<vec4<f32>, MAX_QUADS>;
  var q1: array<vec4<f32>, MAX_QUADS>;
  var q2: array<vec4<f32>, MAX_QUADS>;
  var q3: array<vec4<f32>, MAX_QUADS>;
  var o0: array<vec4<f32>, MAX_QUADS>;
  var o1: array<vec4<f32>, MAX_QUADS>;
  var o2: array<vec4<f32>, MAX_QUADS>;
  var o3: array<vec4<f32>, MAX_QUADS>;
  let r = vec4<u32>(image * params.query_length * params.q_stride + q_head) + block_row_starts(query0, last_query, params.q_stride);
  for (var c = 0u; c < quads; c++) {
    q0[c] = vec4<f32>(q[r.x + c]);
    q1[c] = vec4<f32>(q[r.y + c]);
    q2[c] = vec4<f32>(q[r.z + c]);
    q3[c] = vec4<f32>(q[r.w + c]);
    o0[c] = vec4<f32>(0.0);
    o1[c] = vec4<f32>(0.0);
    o2[c] = vec4<f32>(0.0);
    o3[c] = vec4<f32>(0.0);
  }
  var peak = vec4<f32>(LOWEST);  // per query: the running maximum score
  var total = vec4<f32>(0.0);    // per query: the running sum of exp(score - peak)

  var keys_end = params.key_length;
  if (params.causal != 0u) {
    keys_end = min(keys_end, min(query0 + ROWS, params.query_length));  // the block's last query sees no later key
  }
  let last_key = params.key_length - 1u;
  for (var j0 = 0u; j0 < keys_end; j0 += KEYS) {
    var kr: array<u32, 8>;
    var vr: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
      let row = k_base + min(j0 + j, last_key);
      kr[j] = row * params.k_stride + k_head;
      vr[j] = row * params.v_stride + v_head;
    }
    var s0 = Outs(vec4<f32>(0.0), vec4<f32>(0.0));  // explicit: a loop's var once kept its last values on Dawn + lavapipe
    var s1 = Outs(vec4<f32>(0.0), vec4<f32>(0.0));
    var s2 = Outs(vec4<f32>(0.0), vec4<f32>(0.0));
    var s3 = Outs(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var c = 0u; c < quads; c++) {
      let kq = key_quads(kr, c);
      s0 = mac4(s0, q0[c], kq);
      s1 = mac4(s1, q1[c], kq);
      s2 = mac4(s2, q2[c], kq);
      s3 = mac4(s3, q3[c], kq);
    }
    let u0 = update(masked(s0, j0, query0), peak.x, total.x);
    let u1 = update(masked(s1, j0, query0 + 1u), peak.y, total.y);
    let u2 = update(masked(s2, j0, query0 + 2u), peak.z, total.z);
    let u3 = update(masked(s3, j0, query0 + 3u), peak.w, total.w);
    peak = vec4<f32>(u0.peak, u1.peak, u2.peak, u3.peak);
    total = vec4<f32>(u0.total, u1.total, u2.total, u3.total);
    for (var c = 0u; c < quads; c++) {
      let vq = Quads(
        vec4<f32>(v[vr[0] + c]),
        vec4<f32>(v[vr[1] + c]),
        vec4<f32>(v[vr[2] + c]),
        vec4<f32>(v[vr[3] + c]),
        vec4<f32>(v[vr[4] + c]),
        vec4<f32>(v[vr[5] + c]),
        vec4<f32>(v[vr[6] + c]),
        vec4<f32>(v[vr[7] + c]),
      );
      o0[c] = weigh(o0[c], u0.keep, u0.p, vq);
      o1[c] = weigh(o1[c], u1.keep, u1.p, vq);
      o2[c] = weigh(o2[c], u2.keep, u2.p, vq);
      o3[c] = weigh(o3[c], u3.keep, u3.p, vq);
    }
  }

  if (gid.x >= params.query_blocks) {
    return;
  }
  let inv = 1.0 / total;
  let row_quads = params.heads * quads;
  let w0 = (image * params.query_length + query0) * row_quads + head * quads;
  for (var c = 0u; c < quads; c++) {
    out[w0 + c] = vec4<act>(o0[c] * inv.x);
    if (query0 + 1u < params.query_length) {
      out[w0 + row_quads + c] = vec4<act>(o1[c] * inv.y);
    }
    if (query0 + 2u < params.query_length) {
      out[w0 + 2u * row_quads + c] = vec4<act>(o2[c] * inv.z);
    }
    if (query0 + 3u < params.query_length) {
      out[w0 + 3u * row_quads + c] = vec4<act>(o3[c] * inv.w);
    }
  }
}
