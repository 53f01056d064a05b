// What the register-blocked conv variants share (conv2d.wgsl, conv2d_wide.wgsl and
// conv2d_wide_uniform_weights.wgsl): the params, the bindings but the weights'
// (conv_weights_storage.wgsl or conv_weights_uniform.wgsl define `weight` and load_weights), the
// 8-channel accumulator, and the fused epilogue out = (acc + bias + channel_add + residual) *
// output_scale. Each variant defines OC (8) and its own PX.

#include "activation.wgsl"

struct Params {
  batch: u32,
  in_channels: u32,
  src_height: u32,      // the input tensor's own size
  src_width: u32,
  in_height: u32,       // the size the kernel sees (2x src with upsample)
  in_width: u32,
  out_channels: u32,
  oc_stride: u32,       // out_channels rounded up to a multiple of OC: the weight row length
  out_height: u32,
  out_width: u32,
  kernel_h: u32,
  kernel_w: u32,
  stride: u32,
  pad_top: u32,
  pad_left: u32,
  upsample: u32,        // 1: read through a 2x nearest upsampling
  has_channel_add: u32,
  has_residual: u32,
  output_scale: f32,
  row_blocks: u32,      // ceil(out_width / PX)
  blocks: u32,          // batch * out_height * row_blocks
  path: u32,            // 0: general, 1: 3x3 stride 1 with vec4 rows, 2: 1x1 with vec4 rows
  channel_add_offset: u32,  // channel_add[n, oc] is channel_add[n * stride + offset + oc]: one
  channel_add_stride: u32,  // tensor holds every resnet's projected time embedding
  in_channels_a: u32,   // the 1x1 paths' input may be two tensors side by side in channels (a
                        // skip concatenation, read in place): channels from this one on are input_b4's
  src_channels: u32,    // the input tensor's channels, of which the 3x3 paths read in_channels
  in_channel0: u32,     // from this one on (a conv split over input channels, one window each)
  oc_block0: u32,       // the first block of 8 output channels of this dispatch (workgroup_id.y 0)
  weight_block_vec4s: u32,  // conv_weights_uniform.wgsl: vec4s per output-channel block in the window
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> input4: array<vec4<act>>;  // the same tensor, as vec4s
// @binding(2) is the weights: conv_weights_storage.wgsl or conv_weights_uniform.wgsl.
@group(0) @binding(3) var<storage, read> bias: array<vec4<act>>;
@group(0) @binding(4) var<storage, read> channel_add: array<act>;
@group(0) @binding(5) var<storage, read> residual: array<act>;
@group(0) @binding(6) var<storage, read> input_b4: array<vec4<act>>;
@group(0) @binding(7) var<storage, read_write> output: array<act>;
@group(0) @binding(8) var<uniform> params: Params;

// Quad q (in vec4s from the plane's start) of input channel ic of image n, for the 1x1 paths:
// from input4, or past in_channels_a from input_b4. The branch is on the loop's channel, the
// same in every lane.
fn input_quad(n: u32, ic: u32, q: u32) -> vec4<f32> {
  let quads = params.src_height * params.src_width / 4u;
  if (ic < params.in_channels_a) {
    return vec4<f32>(input4[(n * params.in_channels_a + ic) * quads + q]);
  }
  let cb = params.in_channels - params.in_channels_a;
  return vec4<f32>(input_b4[(n * cb + ic - params.in_channels_a) * quads + q]);
}

// The 8 output channels of one pixel, and the 8 weights of one tap.
struct Pixel {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

fn mac(p: Pixel, w: Pixel, x: f32) -> Pixel {
  let v = vec4<f32>(x);
  return Pixel(fma(w.lo, v, p.lo), fma(w.hi, v, p.hi));
}

fn store_channel(v: f32, n: u32, oc: u32, pixel: u32, out_pixels: u32) {
  if (oc >= params.out_channels) {
    return;
  }
  var y = v;
  if (params.has_channel_add != 0u) {
    y += f32(channel_add[n * params.channel_add_stride + params.channel_add_offset + oc]);
  }
  let index = (n * params.out_channels + oc) * out_pixels + pixel;
  if (params.has_residual != 0u) {
    y += f32(residual[index]);
  }
  output[index] = act(y * params.output_scale);
}

fn store_pixel(acc: Pixel, n: u32, oc0: u32, pixel: u32, out_pixels: u32) {
  let b = Pixel(vec4<f32>(bias[oc0 / 4u]), vec4<f32>(bias[oc0 / 4u + 1u]));
  let lo = acc.lo + b.lo;
  let hi = acc.hi + b.hi;
  store_channel(lo.x, n, oc0, pixel, out_pixels);
  store_channel(lo.y, n, oc0 + 1u, pixel, out_pixels);
  store_channel(lo.z, n, oc0 + 2u, pixel, out_pixels);
  store_channel(lo.w, n, oc0 + 3u, pixel, out_pixels);
  store_channel(hi.x, n, oc0 + 4u, pixel, out_pixels);
  store_channel(hi.y, n, oc0 + 5u, pixel, out_pixels);
  store_channel(hi.z, n, oc0 + 6u, pixel, out_pixels);
  store_channel(hi.w, n, oc0 + 7u, pixel, out_pixels);
}
