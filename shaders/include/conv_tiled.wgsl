// The body of the tiled convolutions, one per tile shape (shaders/ops/conv2d_tiled*.wgsl), with
// its entry point; each variant defines the tile shape (TILE_OC, TILE_PX, TILE_K) and includes its
// bindings (conv_tiled_plain.wgsl or conv_tiled_shortcut.wgsl) and this; what the bodies share
// (the inputs, the GroupNorm prologue, the input tile's staging, the epilogue) is
// conv_tiled_common.wgsl. It is an implicit GEMM with workgroup-memory tiles, the shape that reaches
// ~22 TFLOP/s as a plain f32 matmul on an H100 through Dawn (docs/gpu-runtimes.md), and that is
// slow on llvmpipe (barriers).
//   rows    = output channels (TILE_OC per workgroup),
//   columns = output pixels of the whole batch, N * out_h * out_w (TILE_PX per workgroup),
//   depth   = in_channels * kernel_h * kernel_w, then shortcut_channels more (a resnet's 1x1
//             conv_shortcut over its block input, whose weights are stacked under the conv's),
//             TILE_K per step.
// Each step stages a TILE_K x TILE_OC tile of the weights and a TILE_K x TILE_PX tile of the
// input as the kernel sees it (im2col on the fly: padding, stride and the 2x upsampling resolved
// per element) in workgroup memory; each of the 16 x 16 invocations accumulates TILE_OC / 16
// channels x TILE_PX / 16 pixels, the channels ty, ty + 16, ... and the pixels tx, tx + 16, ...,
// so that neighbouring invocations read and write neighbouring addresses.
// The shapes it takes: TILE_OC and TILE_PX multiples of 16 that divide 256 (so an invocation
// stages one column of each tile), TILE_PX a multiple of 64 (whole vec4s of pixels), TILE_K a
// multiple of 256 / TILE_OC and 256 / TILE_PX (every invocation stages the same count).
// With `norm`, the input is GroupNorm(x) (+ SiLU), made as it is staged (conv_tiled_common.wgsl).

#include "conv_tiled_common.wgsl"

/** Rows of the weight tile that one pass of the 256 invocations stages (one column each). */
const W_ROWS_PER_PASS: u32 = INVOCATIONS / TILE_OC;

var<workgroup> w_tile: array<array<act, TILE_OC>, TILE_K>;  // act: half the workgroup memory at f16

fn conv_tiled(wid: vec3u, lid: vec3u, index: u32) {
  let tx = lid.x;
  let ty = lid.y;
  let oc0 = wid.y * TILE_OC;
  let px0 = wid.x * TILE_PX;
  let out_pixels = params.out_height * params.out_width;
  let columns = params.batch * out_pixels;
  let conv_depth = params.in_channels * params.kernel_h * params.kernel_w;
  let depth = conv_depth + params.shortcut_channels;

  // The images n0 ..= n1 this tile's columns belong to.
  let n0 = px0 / out_pixels;
  let n1 = (min(px0 + TILE_PX, columns) - 1u) / out_pixels;
  if (params.norm != 0u) {
    group_statistics(index, n0, n1 - n0 + 1u);
  }

  // This invocation stages column w_col of the weight tile, rows w_row0, w_row0 + W_ROWS_PER_PASS,
  // ..., and column index % TILE_PX of the input tile (stage_input).
  let w_col = index % TILE_OC;
  let w_row0 = index / TILE_OC;
  let stage_oc = oc0 + w_col;
  let column = staged_column(px0, index, columns, out_pixels);

  // acc[i][q][e]: channel oc0 + ty + 16 i, pixel px0 + tx + 16 (4 q + e).
  var acc: array<array<vec4<f32>, PX_VEC4S>, OC_PER>;
  for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
    for (var r = w_row0; r < TILE_K; r += W_ROWS_PER_PASS) {
      let k = k0 + r;
      var w = act(0.0);
      if (k < depth && stage_oc < params.oc_stride) {
        w = weight[k * params.oc_stride + stage_oc];
      }
      w_tile[r][w_col] = w;
    }
    stage_input(column, index, k0, n0, conv_depth, depth);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var b: array<vec4<f32>, PX_VEC4S>;
      for (var q = 0u; q < PX_VEC4S; q++) {
        let p = tx + 64u * q;
        b[q] = vec4<f32>(vec4<act>(x_tile[kk][p], x_tile[kk][p + 16u], x_tile[kk][p + 32u], x_tile[kk][p + 48u]));
      }
      for (var i = 0u; i < OC_PER; i++) {
        let a = vec4<f32>(f32(w_tile[kk][ty + 16u * i]));
        for (var q = 0u; q < PX_VEC4S; q++) {
          acc[i][q] = fma(a, b[q], acc[i][q]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < OC_PER; i++) {
    for (var j = 0u; j < 4u * PX_VEC4S; j++) {
      store_output(oc0 + ty + 16u * i, px0 + tx + 16u * j, acc[i][j / 4u][j % 4u]);
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) index: u32) {
  conv_tiled(wid, lid, index);
}
