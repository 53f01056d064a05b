// 2-D convolution over NCHW tensors as an implicit GEMM, with the resnet epilogue fused in:
//   out = (conv(in, w) + bias[oc] + channel_add[n, oc] + residual[n, oc, y, x]) * output_scale
// `upsample` reads the input through a nearest-neighbour 2x upsampling, so Upsample2D's
// interpolate-then-conv needs no intermediate tensor.
//
// The variant for software drivers (llvmpipe). There an invocation is one lane of an 8-wide SIMD
// loop, and a storage load whose address depends on a loop variable is done lane by lane (a
// branch, a bounds check and a scalar load per lane and component), uniform or not: measured,
// such a vec4 load costs about as much as 30 multiply-adds of the 8 lanes. Barriers are
// expensive too. So an invocation keeps a block of 8 output pixels (consecutive in a row) x 8
// output channels in registers, with no workgroup memory, and makes every load count:
// - the weights are pre-transposed at load to [in_channels * kh * kw, oc_stride] (output channels
//   padded to a multiple of 8 with zeros): one tap's 8 channels are two vec4 loads, shared by the
//   8 pixels (the channel block is workgroup_id.y);
// - for a 3x3 kernel with stride 1 (everything in a UNet but the downsamplers) the 10 input values
//   of a row feed all three kernel columns: two vec4 loads and two scalars per row (one vec4 read
//   twice through the upsampling);
// - a 1x1 convolution sees the image as one row of H*W pixels: two vec4 loads per input channel;
// - other kernels (stride 2, rows not a multiple of 4 long) take a general path, a checked load
//   per tap and pixel.
// The constant-count loops over kernel rows and columns are unrolled by the compiler, so the
// accumulators are carried from one iteration to the next (a masked store on llvmpipe) once per
// input channel. The batch is folded into the pixel blocks, so a batch fills the SIMD lanes like
// a larger image. Out-of-image taps read a clamped address and are zeroed by a select: no
// divergent branches.

const PX: u32 = 8u;
const OC: u32 = 8u;

fn inside(i: i32, size: u32) -> bool {
  return i >= 0 && i < i32(size);
}

// Input row iy as the kernel sees it (through the upsampling), clamped into the image.
fn src_row(iy: i32) -> u32 {
  return u32(clamp(iy, 0, i32(params.in_height) - 1)) >> params.upsample;
}

// Tap (iy, ix) of the plane starting at `plane`, 0 outside the image (the general path).
fn tap_value(plane: u32, iy: i32, ix: i32) -> f32 {
  let sx = u32(clamp(ix, 0, i32(params.in_width) - 1)) >> params.upsample;
  let v = f32(input[plane + src_row(iy) * params.src_width + sx]);
  return select(0.0, v, inside(iy, params.in_height) && inside(ix, params.in_width));
}

// Where a lane finds columns x0 - 1 .. x0 + 8 of a row (x0 % 8 == 0, rows a multiple of 4 long):
// two vec4s and two scalars, as offsets from the row's start. Through the upsampling the row
// holds source columns h - 1, h, h, h + 1, ..., h + 3, h + 3, h + 4 (h = x0 / 2): one vec4 (read
// twice) and two scalars.
struct RowTaps {
  left: u32,   // scalar index of column x0 - 1
  mid0: u32,   // vec4 indices of columns x0 .. x0 + 7 (or source columns h .. h + 3 twice)
  mid1: u32,
  right: u32,  // scalar index of column x0 + 8
  ok: u32,     // bit j: column x0 - 1 + j lies inside the image
}

// Columns x0 - 1 .. x0 + 8 of the plane starting at `base`, zero outside the image.
fn load_row(base: u32, t: RowTaps, upsample: bool) -> array<f32, 10> {
  let m0 = vec4<f32>(input4[base / 4u + t.mid0]);
  let m1 = vec4<f32>(input4[base / 4u + t.mid1]);
  let l = f32(input[base + t.left]);
  let r = f32(input[base + t.right]);
  // Both layouts come from the same loads, picked by a select: no branch in the loop.
  let flat = array<f32, 10>(l, m0.x, m0.y, m0.z, m0.w, m1.x, m1.y, m1.z, m1.w, r);
  let up = array<f32, 10>(l, m0.x, m0.x, m0.y, m0.y, m0.z, m0.z, m0.w, m0.w, r);
  var v: array<f32, 10>;
  for (var j = 0u; j < 10u; j++) {
    v[j] = select(0.0, select(flat[j], up[j], upsample), (t.ok & (1u << j)) != 0u);
  }
  return v;
}

// The offsets of the 3x3 path's reads for the kernel row at input row iy.
fn row_taps(iy: i32, left: u32, mid0: u32, mid1: u32, right: u32, col_ok: u32) -> RowTaps {
  let start = src_row(iy) * params.src_width;
  return RowTaps(start + left, start / 4u + mid0, start / 4u + mid1, start + right,
                 select(0u, col_ok, inside(iy, params.in_height)));
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  // Lanes past the last block repeat it (their stores are skipped): no early return, so the
  // main loop runs unmasked.
  let cell = min(gid.x, params.blocks - 1u);
  let oc8 = wid.y + params.oc_block0;
  let bx = cell % params.row_blocks;
  let row = cell / params.row_blocks;
  let oy = row % params.out_height;
  let n = row / params.out_height;
  let ox0 = bx * PX;
  let src_plane = params.src_height * params.src_width;
  let first_plane = (n * params.src_channels + params.in_channel0) * src_plane;

  var a0: Pixel;
  var a1: Pixel;
  var a2: Pixel;
  var a3: Pixel;
  var a4: Pixel;
  var a5: Pixel;
  var a6: Pixel;
  var a7: Pixel;
  if (params.path == 1u) {
    // 3x3, stride 1, pad_left 1: output pixel ox0 + p reads input columns ox0 - 1 + p + kx.
    var col_ok = 0u;
    for (var j = 0u; j < 10u; j++) {
      col_ok |= select(0u, 1u << j, inside(i32(ox0 + j) - 1, params.in_width));
    }
    let upsample = params.upsample != 0u;
    let h = ox0 >> params.upsample;
    // Clamped reads: a column outside the image is zeroed by `ok`.
    let left = max(h, 1u) - 1u;
    let right = min(select(h + 8u, h + 4u, upsample), params.src_width - 1u);
    let mid1 = select(h / 4u + 1u, h / 4u, upsample);
    let iy = i32(oy) - i32(params.pad_top);
    let mid0 = h / 4u;
    let taps = array<RowTaps, 3>(row_taps(iy, left, mid0, mid1, right, col_ok),
                                 row_taps(iy + 1, left, mid0, mid1, right, col_ok),
                                 row_taps(iy + 2, left, mid0, mid1, right, col_ok));
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = first_plane + ic * src_plane;
      for (var ky = 0u; ky < 3u; ky++) {
        let v = load_row(plane, taps[ky], upsample);
        for (var kx = 0u; kx < 3u; kx++) {
          let w = load_weights(ic * 9u + ky * 3u + kx, oc8);
          a0 = mac(a0, w, v[kx]);
          a1 = mac(a1, w, v[kx + 1u]);
          a2 = mac(a2, w, v[kx + 2u]);
          a3 = mac(a3, w, v[kx + 3u]);
          a4 = mac(a4, w, v[kx + 4u]);
          a5 = mac(a5, w, v[kx + 5u]);
          a6 = mac(a6, w, v[kx + 6u]);
          a7 = mac(a7, w, v[kx + 7u]);
        }
      }
    }
  } else if (params.path == 2u) {
    // 1x1 over the image seen as one row of H*W pixels (a multiple of 4).
    // Pixels past the end of the row read the next plane (or a clamped address) and are not stored.
    let q = ox0 / 4u;
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let m0 = input_quad(n, ic, q);
      let m1 = input_quad(n, ic, q + 1u);
      let w = load_weights(ic, oc8);
      a0 = mac(a0, w, m0.x);
      a1 = mac(a1, w, m0.y);
      a2 = mac(a2, w, m0.z);
      a3 = mac(a3, w, m0.w);
      a4 = mac(a4, w, m1.x);
      a5 = mac(a5, w, m1.y);
      a6 = mac(a6, w, m1.z);
      a7 = mac(a7, w, m1.w);
    }
  } else {
    let iy0 = i32(oy * params.stride) - i32(params.pad_top);
    let step = i32(params.stride);
    let ix0 = i32(ox0 * params.stride) - i32(params.pad_left);
    let taps = params.kernel_h * params.kernel_w;
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = first_plane + ic * src_plane;
      for (var ky = 0u; ky < params.kernel_h; ky++) {
        let iy = iy0 + i32(ky);
        for (var kx = 0u; kx < params.kernel_w; kx++) {
          let ix = ix0 + i32(kx);
          let w = load_weights(ic * taps + ky * params.kernel_w + kx, oc8);
          a0 = mac(a0, w, tap_value(plane, iy, ix));
          a1 = mac(a1, w, tap_value(plane, iy, ix + step));
          a2 = mac(a2, w, tap_value(plane, iy, ix + 2 * step));
          a3 = mac(a3, w, tap_value(plane, iy, ix + 3 * step));
          a4 = mac(a4, w, tap_value(plane, iy, ix + 4 * step));
          a5 = mac(a5, w, tap_value(plane, iy, ix + 5 * step));
          a6 = mac(a6, w, tap_value(plane, iy, ix + 6 * step));
          a7 = mac(a7, w, tap_value(plane, iy, ix + 7 * step));
        }
      }
    }
  }

  if (gid.x >= params.blocks) {
    return;
  }
  let out_pixels = params.out_height * params.out_width;
  let pixel = oy * params.out_width + ox0;
  let oc0 = oc8 * OC;
  // Stored in a loop the compiler cannot unroll, as in conv2d_wide_main.wgsl (compile time).
  let results = array<Pixel, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
  let stored = min(PX, params.out_width - ox0);
  for (var p = 0u; p < stored; p++) {
    store_pixel(results[p], n, oc0, pixel + p, out_pixels);
  }
}
