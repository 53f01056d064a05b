// 2-D convolution over NCHW tensors as an implicit GEMM, with the resnet epilogue fused in:
//   out = (conv(in, w) + bias[oc] + channel_add[n, oc] + residual[n, oc, y, x]) * output_scale
// `upsample` reads the input through a nearest-neighbour 2x upsampling, so Upsample2D's
// interpolate-then-conv needs no intermediate tensor.
// Weights are pre-transposed at load to [in_channels * kernel_h * kernel_w, out_channels] so the
// OC_BLOCK output channels an invocation computes are contiguous.
// Each invocation computes OC_BLOCK output channels x PX_BLOCK consecutive output pixels in
// registers, with no workgroup memory: barriers are expensive on software rasterisers.

const OC_BLOCK: u32 = 8u;
const PX_BLOCK: u32 = 4u;

struct Params {
  batch: u32,
  in_channels: u32,
  src_height: u32,      // the input tensor's own size
  src_width: u32,
  in_height: u32,       // the size the kernel sees (2x src with upsample)
  in_width: u32,
  out_channels: u32,
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
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> channel_add: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> output: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

fn load_input(base: u32, iy: i32, ix: i32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(params.in_height) || ix >= i32(params.in_width)) {
    return 0.0;
  }
  var sy = u32(iy);
  var sx = u32(ix);
  if (params.upsample != 0u) {
    sy = sy / 2u;
    sx = sx / 2u;
  }
  return input[base + sy * params.src_width + sx];
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let out_pixels = params.out_height * params.out_width;
  let px0 = gid.x * PX_BLOCK;
  let oc0 = gid.y * OC_BLOCK;
  let n = gid.z;
  if (px0 >= out_pixels || oc0 >= params.out_channels || n >= params.batch) {
    return;
  }

  var acc: array<array<f32, PX_BLOCK>, OC_BLOCK>;
  var oy: array<i32, PX_BLOCK>;
  var ox: array<i32, PX_BLOCK>;
  for (var p = 0u; p < PX_BLOCK; p++) {
    let px = min(px0 + p, out_pixels - 1u);
    oy[p] = i32(px / params.out_width * params.stride) - i32(params.pad_top);
    ox[p] = i32(px % params.out_width * params.stride) - i32(params.pad_left);
  }

  let src_plane = params.src_height * params.src_width;
  let kernel_area = params.kernel_h * params.kernel_w;
  for (var ic = 0u; ic < params.in_channels; ic++) {
    let base = (n * params.in_channels + ic) * src_plane;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
      for (var kx = 0u; kx < params.kernel_w; kx++) {
        var x: array<f32, PX_BLOCK>;
        for (var p = 0u; p < PX_BLOCK; p++) {
          x[p] = load_input(base, oy[p] + i32(ky), ox[p] + i32(kx));
        }
        let w_row = ((ic * params.kernel_h + ky) * params.kernel_w + kx) * params.out_channels;
        for (var o = 0u; o < OC_BLOCK; o++) {
          let oc = min(oc0 + o, params.out_channels - 1u);
          let w = weight[w_row + oc];
          for (var p = 0u; p < PX_BLOCK; p++) {
            acc[o][p] = fma(w, x[p], acc[o][p]);
          }
        }
      }
    }
  }

  for (var o = 0u; o < OC_BLOCK; o++) {
    let oc = oc0 + o;
    if (oc >= params.out_channels) {
      break;
    }
    var shift = bias[oc];
    if (params.has_channel_add != 0u) {
      shift += channel_add[n * params.out_channels + oc];
    }
    let out_base = (n * params.out_channels + oc) * out_pixels;
    for (var p = 0u; p < PX_BLOCK; p++) {
      let px = px0 + p;
      if (px >= out_pixels) {
        break;
      }
      var v = acc[o][p] + shift;
      if (params.has_residual != 0u) {
        v += residual[out_base + px];
      }
      output[out_base + px] = v * params.output_scale;
    }
  }
}
