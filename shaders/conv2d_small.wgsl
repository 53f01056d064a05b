// conv2d.wgsl's fast paths for the smallest images (a UNet's innermost level, 4x4): there a row
// block of 8 pixels is half empty and an image fills 4 lanes, so most of each SIMD vector idles.
// Here one invocation computes a whole image (up to 4 rows of 4 pixels) for 8 output channels,
// and the invocations of a workgroup take different channel blocks: the lanes are full, and each
// weight load feeds 16 pixels. Path 1: 3x3, stride 1, padding 1, rows of exactly 4 (up to 4 of
// them); path 2: 1x1 on planes of up to 16 values (a multiple of 4). The parameters are
// conv2d.wgsl's; `blocks` counts (image, channel block) pairs.

const OC: u32 = 8u;

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
  row_blocks: u32,
  blocks: u32,
  path: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> channel_add: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

struct Pixel {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

fn mac(p: Pixel, w: Pixel, x: f32) -> Pixel {
  let v = vec4<f32>(x);
  return Pixel(fma(w.lo, v, p.lo), fma(w.hi, v, p.hi));
}

fn load_weights(row: u32, oc8: u32) -> Pixel {
  let i = row * (params.oc_stride / 4u) + 2u * oc8;
  return Pixel(weight[i], weight[i + 1u]);
}

fn store_channel(v: f32, n: u32, oc: u32, pixel: u32, out_pixels: u32) {
  if (oc >= params.out_channels) {
    return;
  }
  var y = v;
  if (params.has_channel_add != 0u) {
    y += channel_add[n * params.out_channels + oc];
  }
  let index = (n * params.out_channels + oc) * out_pixels + pixel;
  if (params.has_residual != 0u) {
    y += residual[index];
  }
  output[index] = y * params.output_scale;
}

fn store_pixel(acc: Pixel, n: u32, oc0: u32, pixel: u32, out_pixels: u32) {
  let lo = acc.lo + bias[oc0 / 4u];
  let hi = acc.hi + bias[oc0 / 4u + 1u];
  store_channel(lo.x, n, oc0, pixel, out_pixels);
  store_channel(lo.y, n, oc0 + 1u, pixel, out_pixels);
  store_channel(lo.z, n, oc0 + 2u, pixel, out_pixels);
  store_channel(lo.w, n, oc0 + 3u, pixel, out_pixels);
  store_channel(hi.x, n, oc0 + 4u, pixel, out_pixels);
  store_channel(hi.y, n, oc0 + 5u, pixel, out_pixels);
  store_channel(hi.z, n, oc0 + 6u, pixel, out_pixels);
  store_channel(hi.w, n, oc0 + 7u, pixel, out_pixels);
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let cell = min(gid.x, params.blocks - 1u);
  let oc_blocks = params.oc_stride / OC;
  let oc8 = cell % oc_blocks;
  let n = cell / oc_blocks;
  let src_plane = params.src_height * params.src_width;
  let first = n * params.in_channels * src_plane;
  let rows = params.src_height;

  var acc: array<Pixel, 16>;  // acc[4 * y + x]
  if (params.path == 1u) {
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = (first + ic * src_plane) / 4u;
      // The image's rows, zero past its height; columns -1 and 4 are the padding.
      var v: array<vec4<f32>, 4>;
      for (var r = 0u; r < 4u; r++) {
        v[r] = select(vec4<f32>(0.0), input4[plane + min(r, rows - 1u)], r < rows);
      }
      for (var ky = 0u; ky < 3u; ky++) {
        for (var kx = 0u; kx < 3u; kx++) {
          let w = load_weights(ic * 9u + ky * 3u + kx, oc8);
          for (var y = 0u; y < 4u; y++) {
            let iy = i32(y + ky) - 1;
            if (iy < 0 || iy > 3) {
              continue;
            }
            let row = v[u32(iy)];
            let win = array<f32, 6>(0.0, row.x, row.y, row.z, row.w, 0.0);
            for (var x = 0u; x < 4u; x++) {
              acc[4u * y + x] = mac(acc[4u * y + x], w, win[x + kx]);
            }
          }
        }
      }
    }
  } else {
    let quads = src_plane / 4u;
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = (first + ic * src_plane) / 4u;
      let w = load_weights(ic, oc8);
      for (var q = 0u; q < 4u; q++) {
        let m = select(vec4<f32>(0.0), input4[plane + min(q, quads - 1u)], q < quads);
        acc[4u * q] = mac(acc[4u * q], w, m.x);
        acc[4u * q + 1u] = mac(acc[4u * q + 1u], w, m.y);
        acc[4u * q + 2u] = mac(acc[4u * q + 2u], w, m.z);
        acc[4u * q + 3u] = mac(acc[4u * q + 3u], w, m.w);
      }
    }
  }

  if (gid.x >= params.blocks) {
    return;
  }
  let out_pixels = params.out_height * params.out_width;
  for (var p = 0u; p < 16u; p++) {
    if (p < out_pixels) {
      store_pixel(acc[p], n, oc8 * OC, p, out_pixels);
    }
  }
}
