// Adds each image's class embedding to its time embedding (diffusers' UNet2DModel: emb = emb +
// class_embedding(class_labels)): out[n, j] = temb[n, j] + table[row, j], where row is the image's
// class label (an nn.Embedding lookup) or n itself (class_embed_type 'timestep': the table holds
// each image's embedding already). Labels outside the table were refused on the host; a stray
// one is clamped rather than read out of bounds.

#include "activation.wgsl"

struct Params {
  batch: u32,
  dim: u32,
  rows: u32,
  lookup: u32,
}

@group(0) @binding(0) var<storage, read> temb: array<act>;
@group(0) @binding(1) var<storage, read> table: array<act>;
@group(0) @binding(2) var<storage, read> class_labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let n = gid.y;
  if (j >= params.dim || n >= params.batch) {
    return;
  }
  var row = n;
  if (params.lookup != 0u) {
    row = u32(clamp(class_labels[n], 0, i32(params.rows) - 1));
  }
  output[n * params.dim + j] = act(f32(temb[n * params.dim + j]) + f32(table[row * params.dim + j]));
}
