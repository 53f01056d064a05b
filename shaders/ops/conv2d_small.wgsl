// conv2d.wgsl's fast paths for the smallest images (a UNet's innermost level, 4x4): there a row
// block of 8 pixels is half empty and an image fills 4 lanes, so most of each SIMD vector idles.
// Here one invocation computes a whole image (up to 4 rows of 4 pixels) for 8 output channels,
// and the invocations of a workgroup take different channel blocks: the lanes are full, and each
// weight load feeds 16 pixels. Path 1: 3x3, stride 1, padding 1, rows of exactly 4 (up to 4 of
// them); path 2: 1x1 on planes of up to 16 values (a multiple of 4). The parameters are
// conv2d.wgsl's; `blocks` counts (image, channel block) pairs.

const OC: u32 = 8u;

#include "conv_registers.wgsl"
#include "conv_weights_storage.wgsl"

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let cell = min(gid.x, params.blocks - 1u);
  let oc_blocks = params.oc_stride / OC;
  let oc8 = cell % oc_blocks;
  let n = cell / oc_blocks;
  let src_plane = params.src_height * params.src_width;
  let first = (n * params.src_channels + params.in_channel0) * src_plane;
  let rows = params.src_height;

  var acc: array<Pixel, 16>;  // acc[4 * y + x]
  if (params.path == 1u) {
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = (first + ic * src_plane) / 4u;
      // The image's rows, zero past its height; columns -1 and 4 are the padding.
      var v: array<vec4<f32>, 4>;
      for (var r = 0u; r < 4u; r++) {
        v[r] = select(vec4<f32>(0.0), vec4<f32>(input4[plane + min(r, rows - 1u)]), r < rows);
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
      let w = load_weights(ic, oc8);
      for (var q = 0u; q < 4u; q++) {
        let m = select(vec4<f32>(0.0), input_quad(n, ic, min(q, quads - 1u)), q < quads);
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
