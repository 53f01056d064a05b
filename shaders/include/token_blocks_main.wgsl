// The main of token_linear.wgsl and token_geglu.wgsl: ROWS rows x 8 weight rows per invocation
// (token_blocks.wgsl), read as vec4s where in_features is a multiple of 4, else one value at a
// time. The shader including it defines OUTS, its Params (rows, in_features, out_features,
// row_blocks, out_blocks, lanes), the bindings input/input4/weight/weight4, and
//   block_weight_rows(o0, length): where the 8 weight rows of output block o0 start;
//   store_row(a, row, o0): the epilogue of one row (only rows before params.rows are passed).

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  // Lanes past the last block repeat it (their stores are skipped): no early return, so the
  // main loop runs unmasked. Rows past the last are read clamped and not stored.
  let across_outputs = params.lanes != 0u;
  let lane_blocks = select(params.row_blocks, params.out_blocks, across_outputs);
  let lane = min(gid.x, lane_blocks - 1u);
  let r0 = select(lane, wid.y, across_outputs) * ROWS;
  let last_row = params.rows - 1u;
  let o0 = select(wid.y, lane, across_outputs) * OUTS;
  let n = params.in_features;

  var a0: Outs;
  var a1: Outs;
  var a2: Outs;
  var a3: Outs;
  if (n % 4u == 0u) {
    let quads = n / 4u;
    let x = block_row_starts(r0, last_row, quads);
    let w = block_weight_rows(o0, quads);
    for (var i = 0u; i < quads; i++) {
      let q = Quads(
        vec4<f32>(weight4[w[0] + i]),
        vec4<f32>(weight4[w[1] + i]),
        vec4<f32>(weight4[w[2] + i]),
        vec4<f32>(weight4[w[3] + i]),
        vec4<f32>(weight4[w[4] + i]),
        vec4<f32>(weight4[w[5] + i]),
        vec4<f32>(weight4[w[6] + i]),
        vec4<f32>(weight4[w[7] + i]),
      );
      a0 = mac4(a0, vec4<f32>(input4[x.x + i]), q);
      a1 = mac4(a1, vec4<f32>(input4[x.y + i]), q);
      a2 = mac4(a2, vec4<f32>(input4[x.z + i]), q);
      a3 = mac4(a3, vec4<f32>(input4[x.w + i]), q);
    }
  } else {
    let x = block_row_starts(r0, last_row, n);
    let w = block_weight_rows(o0, n);
    for (var i = 0u; i < n; i++) {
      let s = Outs(
        vec4<f32>(f32(weight[w[0] + i]), f32(weight[w[1] + i]), f32(weight[w[2] + i]), f32(weight[w[3] + i])),
        vec4<f32>(f32(weight[w[4] + i]), f32(weight[w[5] + i]), f32(weight[w[6] + i]), f32(weight[w[7] + i])),
      );
      a0 = mac1(a0, f32(input[x.x + i]), s);
      a1 = mac1(a1, f32(input[x.y + i]), s);
      a2 = mac1(a2, f32(input[x.z + i]), s);
      a3 = mac1(a3, f32(input[x.w + i]), s);
    }
  }

  if (gid.x >= lane_blocks) {
    return;
  }
  // Stored in a loop the compiler cannot unroll, as in conv2d_wide_main.wgsl (compile time).
  let results = array<Outs, 4>(a0, a1, a2, a3);
  let stored = min(ROWS, params.rows - r0);
  for (var r = 0u; r < stored; r++) {
    store_row(results[r], r0 + r, o0);
  }
}
