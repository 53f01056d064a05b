// Token-major multi-head attention for GPUs, FlashAttention-style (the body of
// shaders/ops/token_attention_tiled*.wgsl, which define COLUMN_BLOCKS): out = softmax(q k^T * scale) v
// per (image, head), q, k and v column ranges of [batch, tokens, width] tensors read in place, as
// token_attention.wgsl takes them (its header gives the layout). With `causal`, query i sees keys 0 ..= i.
//
// One workgroup of 16 x 16 invocations per (image, head, block of BLOCK_QUERIES queries). It walks
// the keys TILE_KEYS at a time; per tile:
//   1. scores: a BLOCK_QUERIES x TILE_KEYS GEMM over the head's dims, DEPTH_STEP dims of q and k
//      staged in workgroup memory per step, each invocation accumulating 4 queries (ty + 16 i) x
//      2 keys (tx + 16 j) in registers;
//   2. each query's maximum over the tile (the 16 invocations of its row, through workgroup
//      memory), the online-softmax update (the output so far rescaled by exp(old max - new max))
//      and p = exp(score - max) into workgroup memory (`probs`, a tile of p: never the whole matrix);
//   3. out += p v: v staged `value_keys` keys at a time, each invocation accumulating its 4 queries
//      x columns tx + 16 c (c < COLUMN_BLOCKS) in registers.
// Each invocation sums the p of its own keys (the same rescaling applies), and the 16 partial sums
// of a query are added once at the end. Nothing larger than a tile is stored, and every loop that
// holds a barrier has a bound that is the same for the whole workgroup.
// Workgroup memory: `stage` (1984 f32) + `probs` (64 x 33 f32) = 16 KiB, WebGPU's guaranteed size.

#include "activation.wgsl"

const BLOCK_QUERIES: u32 = 64u;
const TILE_KEYS: u32 = 32u;
const DEPTH_STEP: u32 = 8u;
const INVOCATIONS: u32 = 256u;
/** Pitches of the staged q and k steps (one more than their rows, against bank conflicts). */
const Q_PITCH: u32 = BLOCK_QUERIES + 1u;
const K_PITCH: u32 = TILE_KEYS + 1u;
const K_STAGE: u32 = DEPTH_STEP * Q_PITCH;  // where the k step starts in `stage`
const QK_FLOATS: u32 = DEPTH_STEP * (Q_PITCH + K_PITCH);
const P_PITCH: u32 = TILE_KEYS + 1u;
const STAGE_FLOATS: u32 = 1984u;  // the host's value_keys * head_dim + 16 stays within it
const LOWEST: f32 = -3.4e38;      // the score of a masked key, and the maximum before any key

struct Params {
#include "token_attention_params.wgsl"
  query_blocks: u32,   // ceil(query_length / BLOCK_QUERIES)
  workgroups: u32,     // batch * heads * query_blocks
  value_keys: u32,     // keys of v per staged chunk: a power of 2 dividing TILE_KEYS
  column_blocks: u32,  // ceil(head_dim / 16) <= COLUMN_BLOCKS
}

@group(0) @binding(0) var<storage, read> q: array<act>;
@group(0) @binding(1) var<storage, read> k: array<act>;
@group(0) @binding(2) var<storage, read> v: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

// The q and k steps of the scores, then the rows' partial maxima (and at the end their partial
// sums, 16 per query), then chunks of v; barriers separate the uses.
var<workgroup> stage: array<f32, STAGE_FLOATS>;
// p of the tile, probs[query * P_PITCH + key].
var<workgroup> probs: array<f32, BLOCK_QUERIES * P_PITCH>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) index: u32) {
  let group = wid.x + wid.y * groups.x;
  if (group >= params.workgroups) {
    return;  // the whole workgroup: the grid's last row is not full
  }
  let D = params.head_dim;
  let query_block = group % params.query_blocks;
  let item = group / params.query_blocks;  // image * heads + head
  let head = item % params.heads;
  let image = item / params.heads;
  let query0 = query_block * BLOCK_QUERIES;
  let tx = index % 16u;
  let ty = index / 16u;
  // Row r of q is at q_base + r * q_stride (r counted within the image), and so for k and v.
  let q_base = image * params.query_length * params.q_stride + params.q_offset + head * D;
  let k_base = image * params.key_length * params.k_stride + params.k_offset + head * D;
  let v_base = image * params.key_length * params.v_stride + params.v_offset + head * D;
  var keys_end = params.key_length;
  if (params.causal != 0u) {
    keys_end = min(keys_end, query0 + BLOCK_QUERIES);  // no query of the block sees a later key
  }

  var peak: array<f32, 4>;   // per query: the running maximum score
  var total: array<f32, 4>;  // per query: this invocation's running sum of exp(score - peak)
  var acc: array<array<f32, COLUMN_BLOCKS>, 4>;
  for (var i = 0u; i < 4u; i++) {
    peak[i] = LOWEST;
    total[i] = 0.0;
    for (var c = 0u; c < COLUMN_BLOCKS; c++) {
      acc[i][c] = 0.0;
    }
  }

  for (var key0 = 0u; key0 < keys_end; key0 += TILE_KEYS) {
    // 1. Scores s[i][j] of queries query0 + ty + 16 i and keys key0 + tx + 16 j.
    var s: array<array<f32, 2>, 4>;
    for (var i = 0u; i < 4u; i++) {
      s[i][0] = 0.0;
      s[i][1] = 0.0;
    }
    for (var d0 = 0u; d0 < D; d0 += DEPTH_STEP) {
      // Staged as [dim][query] and [dim][key], read along rows: consecutive invocations load
      // consecutive dims of one row.
      for (var e = index; e < BLOCK_QUERIES * DEPTH_STEP; e += INVOCATIONS) {
        let row = e / DEPTH_STEP;
        let d = e % DEPTH_STEP;
        var value = 0.0;
        if (query0 + row < params.query_length && d0 + d < D) {
          value = f32(q[q_base + (query0 + row) * params.q_stride + d0 + d]);
        }
        stage[d * Q_PITCH + row] = value;
      }
      for (var e = index; e < TILE_KEYS * DEPTH_STEP; e += INVOCATIONS) {
        let row = e / DEPTH_STEP;
        let d = e % DEPTH_STEP;
        var value = 0.0;
        if (key0 + row < params.key_length && d0 + d < D) {
          value = f32(k[k_base + (key0 + row) * params.k_stride + d0 + d]);
        }
        stage[K_STAGE + d * K_PITCH + row] = value;
      }
      workgroupBarrier();
      for (var d = 0u; d < DEPTH_STEP; d++) {
        let k0 = stage[K_STAGE + d * K_PITCH + tx];
        let k1 = stage[K_STAGE + d * K_PITCH + tx + 16u];
        for (var i = 0u; i < 4u; i++) {
          let qi = stage[d * Q_PITCH + ty + 16u * i];
          s[i][0] = fma(qi, k0, s[i][0]);
          s[i][1] = fma(qi, k1, s[i][1]);
        }
      }
      workgroupBarrier();
    }

    // 2. Masks, the rows' maxima and the online-softmax update.
    for (var i = 0u; i < 4u; i++) {
      let query = query0 + ty + 16u * i;
      var row_max = LOWEST;
      for (var j = 0u; j < 2u; j++) {
        let key = key0 + tx + 16u * j;
        let seen = key < params.key_length && (params.causal == 0u || key <= query);
        s[i][j] = select(LOWEST, s[i][j] * params.scale, seen);
        row_max = max(row_max, s[i][j]);
      }
      stage[(ty + 16u * i) * 16u + tx] = row_max;
    }
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
      let row = ty + 16u * i;
      var next = peak[i];
      for (var t = 0u; t < 16u; t++) {
        next = max(next, stage[row * 16u + t]);
      }
      let keep = exp(peak[i] - next);
      peak[i] = next;
      var sum = 0.0;
      for (var j = 0u; j < 2u; j++) {
        // A masked key weighs 0, also while every key so far was masked (next = LOWEST).
        let p = select(0.0, exp(s[i][j] - next), s[i][j] > LOWEST);
        probs[row * P_PITCH + tx + 16u * j] = p;
        sum += p;
      }
      total[i] = fma(total[i], keep, sum);
      for (var c = 0u; c < COLUMN_BLOCKS; c++) {
        acc[i][c] *= keep;
      }
    }
    workgroupBarrier();

    // 3. out += p v over the tile's keys, value_keys at a time, staged as [key][dim].
    let tile_keys = min(TILE_KEYS, keys_end - key0);
    let chunk = params.value_keys * D;
    for (var j0 = 0u; j0 < tile_keys; j0 += params.value_keys) {
      for (var e = index; e < chunk; e += INVOCATIONS) {
        let row = e / D;
        let key = key0 + j0 + row;
        var value = 0.0;
        if (key < params.key_length) {
          value = f32(v[v_base + key * params.v_stride + e % D]);  // 0, not whatever lies beyond: 0 * NaN is NaN
        }
        stage[e] = value;
      }
      workgroupBarrier();
      let keys = min(params.value_keys, tile_keys - j0);
      for (var j = 0u; j < keys; j++) {
        var p: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
          p[i] = probs[(ty + 16u * i) * P_PITCH + j0 + j];
        }
        // Columns past head_dim in the last block read the next key's values: never stored.
        for (var c = 0u; c < COLUMN_BLOCKS; c++) {
          if (c < params.column_blocks) {
            let value = stage[j * D + tx + 16u * c];
            for (var i = 0u; i < 4u; i++) {
              acc[i][c] = fma(p[i], value, acc[i][c]);
            }
          }
        }
      }
      workgroupBarrier();
    }
  }

  // The 16 partial sums of each query, then the output.
  for (var i = 0u; i < 4u; i++) {
    stage[(ty + 16u * i) * 16u + tx] = total[i];
  }
  workgroupBarrier();
  for (var i = 0u; i < 4u; i++) {
    let query = query0 + ty + 16u * i;
    var sum = 0.0;
    for (var t = 0u; t < 16u; t++) {
      sum += stage[(ty + 16u * i) * 16u + t];
    }
    if (query < params.query_length) {
      let inv = 1.0 / sum;
      let o_start = (image * params.query_length + query) * params.heads * D + head * D;
      for (var c = 0u; c < COLUMN_BLOCKS; c++) {
        let column = tx + 16u * c;
        if (column < D) {
          out[o_start + column] = act(acc[i][c] * inv);
        }
      }
    }
  }
}
