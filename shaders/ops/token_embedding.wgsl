// A transformer's input embedding: each token's row of the token table (nn.Embedding, read at its
// id) plus the row of the position table at its position in the sequence (positions 0 .. L-1, as
// CLIP's position_ids). ids [batch, L] i32 -> output [batch, L, dim]. Ids outside the table were
// refused on the host; a stray one is clamped rather than read out of bounds.
//
// The token table may come in up to four parts of `part_rows` rows each (rows 0 .. part_rows - 1 in
// token_table0, and so on): SD 1.5's table is 152 MB in f32, more than the 128 MiB a storage binding
// is guaranteed. Unused parts are bound to a placeholder and never read.

#include "activation.wgsl"

struct Params {
  tokens: u32,  // batch * L
  length: u32,  // L
  dim: u32,
  vocab: u32,
  part_rows: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> token_table0: array<weight_t>;
@group(0) @binding(2) var<storage, read> token_table1: array<weight_t>;
@group(0) @binding(3) var<storage, read> token_table2: array<weight_t>;
@group(0) @binding(4) var<storage, read> token_table3: array<weight_t>;
@group(0) @binding(5) var<storage, read> position_table: array<weight_t>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;
@group(0) @binding(7) var<uniform> params: Params;

fn token_value(row: u32, j: u32) -> f32 {
  let part = row / params.part_rows;
  let i = (row - part * params.part_rows) * params.dim + j;
  if (part == 0u) {
    return f32(token_table0[i]);
  }
  if (part == 1u) {
    return f32(token_table1[i]);
  }
  if (part == 2u) {
    return f32(token_table2[i]);
  }
  return f32(token_table3[i]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= params.tokens * params.dim) {
    return;
  }
  let j = index % params.dim;
  let token = index / params.dim;
  let row = u32(clamp(ids[token], 0, i32(params.vocab) - 1));
  let position = token % params.length;
  output[index] = act(token_value(row, j) + f32(position_table[position * params.dim + j]));
}
