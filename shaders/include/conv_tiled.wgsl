// The body of the tiled convolutions, one per tile shape (shaders/ops/conv2d_tiled*.wgsl): their
// shared inputs (bindings 0-6) and entry point; each variant defines the tile shape (TILE_OC,
// TILE_PX, TILE_K) and declares its own further bindings (the shortcut's, the output, params) and
// `shortcut_value`. It is an implicit GEMM with workgroup-memory tiles, the shape that reaches
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
//
// With `norm`, the input is GroupNorm(x) (and SiLU of it with `silu`), made here rather than by a
// separate node: the workgroup first computes the mean and variance of every group of each image
// its TILE_PX columns touch, in two passes (the mean, then the mean of (x - mean)^2, so nothing
// cancels), each (image, group) reduced by 256 / pairs invocations; staging then normalises each
// value it reads. Padding stays zero: it pads the normalised tensor.

#include "activation.wgsl"

const INVOCATIONS: u32 = 256u;
/** (image, group) pairs one workgroup can normalise; the graph fuses only when a tile needs no more. */
const MAX_NORM_PAIRS: u32 = 256u;

struct Params {
  batch: u32,
  in_channels: u32,
  src_height: u32,
  src_width: u32,
  in_height: u32,
  in_width: u32,
  out_channels: u32,
  oc_stride: u32,
  out_height: u32,
  out_width: u32,
  kernel_h: u32,
  kernel_w: u32,
  stride: u32,
  pad_top: u32,
  pad_left: u32,
  upsample: u32,
  has_channel_add: u32,
  has_residual: u32,
  output_scale: f32,
  channel_add_offset: u32,  // as in conv_registers.wgsl
  channel_add_stride: u32,
  in_channels_a: u32,       // channels from this one on are input_b's (a skip concatenation read in place)
  norm: u32,                // 1: the input is GroupNorm(input) with gamma_beta = [gamma, beta]
  groups: u32,
  eps: f32,
  silu: u32,
  shortcut_channels: u32,   // depth rows past in_channels * taps: 1x1 over shortcut (+ shortcut_b)
  shortcut_channels_a: u32, // the channels of shortcut; the rest are shortcut_b's
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> input_b: array<act>;
@group(0) @binding(2) var<storage, read> gamma_beta: array<act>;
@group(0) @binding(3) var<storage, read> weight: array<act>;
@group(0) @binding(4) var<storage, read> bias: array<act>;
@group(0) @binding(5) var<storage, read> channel_add: array<act>;
@group(0) @binding(6) var<storage, read> residual: array<act>;

// Value `offset` of input plane ic of image n: from input, or past in_channels_a from input_b.
fn input_value(n: u32, ic: u32, offset: u32) -> f32 {
  let src_plane = params.src_height * params.src_width;
  if (ic < params.in_channels_a) {
    return f32(input[(n * params.in_channels_a + ic) * src_plane + offset]);
  }
  let cb = params.in_channels - params.in_channels_a;
  return f32(input_b[(n * cb + ic - params.in_channels_a) * src_plane + offset]);
}

/** Accumulators per invocation: OC_PER channels x PX_VEC4S vec4s of pixels. */
const OC_PER: u32 = TILE_OC / 16u;
const PX_VEC4S: u32 = TILE_PX / 64u;
/** Rows of a tile that one pass of the 256 invocations stages (one column each). */
const W_ROWS_PER_PASS: u32 = INVOCATIONS / TILE_OC;
const X_ROWS_PER_PASS: u32 = INVOCATIONS / TILE_PX;

var<workgroup> w_tile: array<array<f32, TILE_OC>, TILE_K>;
var<workgroup> x_tile: array<array<f32, TILE_PX>, TILE_K>;
var<workgroup> partial: array<f32, INVOCATIONS>;
var<workgroup> group_mean: array<f32, MAX_NORM_PAIRS>;
var<workgroup> group_rstd: array<f32, MAX_NORM_PAIRS>;

// Sum over the elements lane, lane + lanes, ... of group g of image n: of x, or of (x - mean)^2.
fn group_sum(n: u32, g: u32, lane: u32, lanes: u32, mean: f32, squares: bool) -> f32 {
  let plane = params.src_height * params.src_width;
  let per_group = params.in_channels / params.groups;
  let count = per_group * plane;
  var s = 0.0;
  for (var e = lane; e < count; e += lanes) {
    let v = input_value(n, g * per_group + e / plane, e % plane);
    if (squares) {
      let d = v - mean;
      s = fma(d, d, s);
    } else {
      s += v;
    }
  }
  return s;
}

// group_mean / group_rstd[(n - n0) * groups + g] for the images n0 .. n0 + images - 1.
fn group_statistics(index: u32, n0: u32, images: u32) {
  let pairs = images * params.groups;
  let lanes = INVOCATIONS / pairs;
  let pair = index / lanes;
  let lane = index % lanes;
  let in_pair = pair < pairs;
  let n = n0 + pair / params.groups;
  let g = pair % params.groups;
  let count = f32((params.in_channels / params.groups) * params.src_height * params.src_width);
  for (var sweep = 0u; sweep < 2u; sweep++) {
    var s = 0.0;
    if (in_pair) {
      s = group_sum(n, g, lane, lanes, select(0.0, group_mean[pair], sweep == 1u), sweep == 1u);
    }
    partial[index] = s;
    workgroupBarrier();
    if (index < pairs) {
      var total = 0.0;
      for (var l = 0u; l < lanes; l++) {
        total += partial[index * lanes + l];
      }
      if (sweep == 0u) {
        group_mean[index] = total / count;
      } else {
        group_rstd[index] = inverseSqrt(total / count + params.eps);
      }
    }
    workgroupBarrier();
  }
}

// Input value `offset` of channel ic of image n (the tile's image n - n0) as the conv sees it.
fn conv_input(n: u32, n0: u32, ic: u32, offset: u32) -> f32 {
  let x = input_value(n, ic, offset);
  if (params.norm == 0u) {
    return x;
  }
  let pair = (n - n0) * params.groups + ic / (params.in_channels / params.groups);
  let y = fma((x - group_mean[pair]) * group_rstd[pair], f32(gamma_beta[ic]), f32(gamma_beta[params.in_channels + ic]));
  if (params.silu != 0u) {
    return y / (1.0 + exp(-y));
  }
  return y;
}

fn conv_tiled(wid: vec3u, lid: vec3u, index: u32) {
  let tx = lid.x;
  let ty = lid.y;
  let oc0 = wid.y * TILE_OC;
  let px0 = wid.x * TILE_PX;
  let out_pixels = params.out_height * params.out_width;
  let columns = params.batch * out_pixels;
  let taps = params.kernel_h * params.kernel_w;
  let conv_depth = params.in_channels * taps;
  let depth = conv_depth + params.shortcut_channels;

  // The images n0 ..= n1 this tile's columns belong to.
  let n0 = px0 / out_pixels;
  let n1 = (min(px0 + TILE_PX, columns) - 1u) / out_pixels;
  if (params.norm != 0u) {
    group_statistics(index, n0, n1 - n0 + 1u);
  }

  // This invocation stages column w_col of the weight tile, rows w_row0, w_row0 + W_ROWS_PER_PASS,
  // ..., and column x_col of the input tile, rows x_row0, x_row0 + X_ROWS_PER_PASS, ...
  let w_col = index % TILE_OC;
  let w_row0 = index / TILE_OC;
  let stage_oc = oc0 + w_col;
  let x_col = index % TILE_PX;
  let x_row0 = index / TILE_PX;
  let stage_px = px0 + x_col;
  let stage_ok = stage_px < columns;
  let sp = min(stage_px, columns - 1u);
  let sn = sp / out_pixels;
  let so = sp % out_pixels;
  let iy0 = i32((so / params.out_width) * params.stride) - i32(params.pad_top);
  let ix0 = i32((so % params.out_width) * params.stride) - i32(params.pad_left);

  // acc[i][q][e]: channel oc0 + ty + 16 i, pixel px0 + tx + 16 (4 q + e).
  var acc: array<array<vec4<f32>, PX_VEC4S>, OC_PER>;
  for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
    for (var r = w_row0; r < TILE_K; r += W_ROWS_PER_PASS) {
      let k = k0 + r;
      var w = 0.0;
      if (k < depth && stage_oc < params.oc_stride) {
        w = f32(weight[k * params.oc_stride + stage_oc]);
      }
      w_tile[r][w_col] = w;
    }
    for (var r = x_row0; r < TILE_K; r += X_ROWS_PER_PASS) {
      let k = k0 + r;
      var x = 0.0;
      if (k < conv_depth && stage_ok) {
        let ic = k / taps;
        let t = k % taps;
        let iy = iy0 + i32(t / params.kernel_w);
        let ix = ix0 + i32(t % params.kernel_w);
        if (iy >= 0 && ix >= 0 && iy < i32(params.in_height) && ix < i32(params.in_width)) {
          let sy = u32(iy) >> params.upsample;
          let sx = u32(ix) >> params.upsample;
          x = conv_input(sn, n0, ic, sy * params.src_width + sx);
        }
      } else if (k < depth && stage_ok) {
        // The shortcut is 1x1 over a tensor of the output's size: pixel `so` itself.
        x = shortcut_value(sn, k - conv_depth, so);
      }
      x_tile[r][x_col] = x;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var b: array<vec4<f32>, PX_VEC4S>;
      for (var q = 0u; q < PX_VEC4S; q++) {
        let p = tx + 64u * q;
        b[q] = vec4<f32>(x_tile[kk][p], x_tile[kk][p + 16u], x_tile[kk][p + 32u], x_tile[kk][p + 48u]);
      }
      for (var i = 0u; i < OC_PER; i++) {
        let a = vec4<f32>(w_tile[kk][ty + 16u * i]);
        for (var q = 0u; q < PX_VEC4S; q++) {
          acc[i][q] = fma(a, b[q], acc[i][q]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < OC_PER; i++) {
    let oc = oc0 + ty + 16u * i;
    if (oc >= params.out_channels) {
      continue;
    }
    for (var j = 0u; j < 4u * PX_VEC4S; j++) {
      let px = px0 + tx + 16u * j;
      if (px >= columns) {
        continue;
      }
      let n = px / out_pixels;
      var v = acc[i][j / 4u][j % 4u] + f32(bias[oc]);
      if (params.has_channel_add != 0u) {
        v += f32(channel_add[n * params.channel_add_stride + params.channel_add_offset + oc]);
      }
      let out_index = (n * params.out_channels + oc) * out_pixels + px % out_pixels;
      if (params.has_residual != 0u) {
        v += f32(residual[out_index]);
      }
      output[out_index] = act(v * params.output_scale);
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) index: u32) {
  conv_tiled(wid, lid, index);
}
