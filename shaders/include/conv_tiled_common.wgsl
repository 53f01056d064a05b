// What the tiled conv bodies (conv_tiled.wgsl, conv_tiled_subgroups.wgsl) share: the params,
// inputs (bindings 0-6), the GroupNorm prologue, the staging of the input tile and the epilogue.
// The variant defines TILE_OC, TILE_PX and TILE_K; its bindings include declares the output,
// params and `shortcut_value`.
//
// With `norm`, the input is GroupNorm(x) (and SiLU of it with `silu`), made by the conv rather
// than by a separate node: the workgroup first computes the mean and variance of every group of
// each image its TILE_PX columns touch, in two passes (the mean, then the mean of (x - mean)^2, so
// nothing cancels), each (image, group) reduced by 256 / pairs invocations; staging then
// normalises each value it reads. Padding stays zero: it pads the normalised tensor.

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
@group(0) @binding(3) var<storage, read> weight: array<weight_t>;
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
/** Rows of the input tile that one pass of the 256 invocations stages (one column each). */
const X_ROWS_PER_PASS: u32 = INVOCATIONS / TILE_PX;

// The staged tiles hold `act`: at f16 half the workgroup memory and its traffic, and the values
// are what an f16 graph stores anyway (a normalised input is rounded as the unfused GroupNorm's is).
var<workgroup> x_tile: array<array<act, TILE_PX>, TILE_K>;
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

// The output pixel px0 + index % TILE_PX whose column of the input tile this invocation stages,
// as the im2col read needs it.
struct StagedColumn {
  ok: bool,   // the pixel exists (the last tile may be partial)
  n: u32,     // its image
  offset: u32, // its offset in the output plane
  iy0: i32,   // the input row and column of the kernel's first tap
  ix0: i32,
}

fn staged_column(px0: u32, index: u32, columns: u32, out_pixels: u32) -> StagedColumn {
  let px = px0 + index % TILE_PX;
  let sp = min(px, columns - 1u);
  let so = sp % out_pixels;
  return StagedColumn(
    px < columns,
    sp / out_pixels,
    so,
    i32((so / params.out_width) * params.stride) - i32(params.pad_top),
    i32((so % params.out_width) * params.stride) - i32(params.pad_left),
  );
}

// Stages rows index / TILE_PX, + X_ROWS_PER_PASS, ... of the input tile for depth k0 on: depth
// row k is input channel k / taps at tap k % taps, or past conv_depth the shortcut's channels.
fn stage_input(c: StagedColumn, index: u32, k0: u32, n0: u32, conv_depth: u32, depth: u32) {
  let taps = params.kernel_h * params.kernel_w;
  for (var r = index / TILE_PX; r < TILE_K; r += X_ROWS_PER_PASS) {
    let k = k0 + r;
    var x = 0.0;
    if (k < conv_depth && c.ok) {
      let ic = k / taps;
      let t = k % taps;
      let iy = c.iy0 + i32(t / params.kernel_w);
      let ix = c.ix0 + i32(t % params.kernel_w);
      if (iy >= 0 && ix >= 0 && iy < i32(params.in_height) && ix < i32(params.in_width)) {
        let sy = u32(iy) >> params.upsample;
        let sx = u32(ix) >> params.upsample;
        x = conv_input(c.n, n0, ic, sy * params.src_width + sx);
      }
    } else if (k < depth && c.ok) {
      // The shortcut is 1x1 over a tensor of the output's size: pixel `offset` itself.
      x = shortcut_value(c.n, k - conv_depth, c.offset);
    }
    x_tile[r][index % TILE_PX] = act(x);
  }
}

// The epilogue: bias, channel_add, residual and scale on the sum for channel oc, pixel px.
fn store_output(oc: u32, px: u32, sum: f32) {
  let out_pixels = params.out_height * params.out_width;
  if (oc >= params.out_channels || px >= params.batch * out_pixels) {
    return;
  }
  let n = px / out_pixels;
  var v = sum + f32(bias[oc]);
  if (params.has_channel_add != 0u) {
    v += f32(channel_add[n * params.channel_add_stride + params.channel_add_offset + oc]);
  }
  let out_index = (n * params.out_channels + oc) * out_pixels + px % out_pixels;
  if (params.has_residual != 0u) {
    v += f32(residual[out_index]);
  }
  output[out_index] = act(v * params.output_scale);
}
