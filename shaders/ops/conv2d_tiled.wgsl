// conv2d.wgsl's convolution (same epilogue, same weight layout) for real GPUs: an implicit GEMM
// with workgroup-memory tiles, the shape that reaches ~22 TFLOP/s as a plain f32 matmul on an
// H100 through Dawn (docs/gpu-runtimes.md), and that is slow on llvmpipe (barriers).
//   rows    = output channels (64 per workgroup),
//   columns = output pixels of the whole batch, N * out_h * out_w (64 per workgroup),
//   depth   = in_channels * kernel_h * kernel_w, 16 per step.
// Each step stages a 16 x 64 tile of the weights and a 16 x 64 tile of the input as the kernel
// sees it (im2col on the fly: padding, stride and the 2x upsampling resolved per element) in
// workgroup memory; each of the 16 x 16 invocations accumulates 4 channels x 4 pixels, the pixels
// tx, tx + 16, ... so that neighbouring invocations read and write neighbouring addresses.

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

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
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> channel_add: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read> input_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

// Value `offset` of input plane ic of image n: from input, or past in_channels_a from input_b.
fn input_value(n: u32, ic: u32, offset: u32) -> f32 {
  let src_plane = params.src_height * params.src_width;
  if (ic < params.in_channels_a) {
    return input[(n * params.in_channels_a + ic) * src_plane + offset];
  }
  let cb = params.in_channels - params.in_channels_a;
  return input_b[(n * cb + ic - params.in_channels_a) * src_plane + offset];
}

var<workgroup> w_tile: array<array<f32, TILE>, TILE_K>;
var<workgroup> x_tile: array<array<f32, TILE>, TILE_K>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) index: u32) {
  let tx = lid.x;
  let ty = lid.y;
  let oc0 = wid.y * TILE;
  let px0 = wid.x * TILE;
  let out_pixels = params.out_height * params.out_width;
  let columns = params.batch * out_pixels;
  let taps = params.kernel_h * params.kernel_w;
  let depth = params.in_channels * taps;

  // This invocation stages column `col` of both tiles, rows row0, row0 + 4, row0 + 8, row0 + 12.
  let col = index % TILE;
  let row0 = index / TILE;
  let stage_px = px0 + col;
  let stage_ok = stage_px < columns;
  let sp = min(stage_px, columns - 1u);
  let sn = sp / out_pixels;
  let so = sp % out_pixels;
  let iy0 = i32((so / params.out_width) * params.stride) - i32(params.pad_top);
  let ix0 = i32((so % params.out_width) * params.stride) - i32(params.pad_left);

  var acc: array<vec4<f32>, 4>;  // acc[i][j]: channel oc0 + ty + 16 i, pixel px0 + tx + 16 j
  for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
    for (var r = 0u; r < TILE_K; r += 4u) {
      let k = k0 + row0 + r;
      let oc = oc0 + col;
      var w = 0.0;
      if (k < depth && oc < params.oc_stride) {
        w = weight[k * params.oc_stride + oc];
      }
      w_tile[row0 + r][col] = w;
      var x = 0.0;
      if (k < depth && stage_ok) {
        let ic = k / taps;
        let t = k % taps;
        let iy = iy0 + i32(t / params.kernel_w);
        let ix = ix0 + i32(t % params.kernel_w);
        if (iy >= 0 && ix >= 0 && iy < i32(params.in_height) && ix < i32(params.in_width)) {
          let sy = u32(iy) >> params.upsample;
          let sx = u32(ix) >> params.upsample;
          x = input_value(sn, ic, sy * params.src_width + sx);
        }
      }
      x_tile[row0 + r][col] = x;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let a = vec4<f32>(w_tile[kk][ty], w_tile[kk][ty + 16u], w_tile[kk][ty + 32u], w_tile[kk][ty + 48u]);
      let b = vec4<f32>(x_tile[kk][tx], x_tile[kk][tx + 16u], x_tile[kk][tx + 32u], x_tile[kk][tx + 48u]);
      acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
      acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
      acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
      acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let oc = oc0 + ty + 16u * i;
    if (oc >= params.out_channels) {
      continue;
    }
    for (var j = 0u; j < 4u; j++) {
      let px = px0 + tx + 16u * j;
      if (px >= columns) {
        continue;
      }
      let n = px / out_pixels;
      var v = acc[i][j] + bias[oc];
      if (params.has_channel_add != 0u) {
        v += channel_add[n * params.channel_add_stride + params.channel_add_offset + oc];
      }
      let out_index = (n * params.out_channels + oc) * out_pixels + px % out_pixels;
      if (params.has_residual != 0u) {
        v += residual[out_index];
      }
      output[out_index] = v * params.output_scale;
    }
  }
}
