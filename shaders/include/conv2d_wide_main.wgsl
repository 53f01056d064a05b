// conv2d.wgsl's fast paths for wide rows: 16 output pixels x 8 output channels per invocation.
// Each weight load (the larger part of the loads, see conv2d.wgsl) then feeds 16 pixels instead
// of 8. Used for 3x3 stride-1 convolutions on rows a multiple of 16 long (path 1) and 1x1
// convolutions on planes a multiple of 16 long (path 2); the parameters are conv2d.wgsl's.

const PX: u32 = 16u;
const OC: u32 = 8u;

fn inside(i: i32, size: u32) -> bool {
  return i >= 0 && i < i32(size);
}

fn src_row(iy: i32) -> u32 {
  return u32(clamp(iy, 0, i32(params.in_height) - 1)) >> params.upsample;
}

// Columns x0 - 1 .. x0 + 16 of a row (x0 % 16 == 0): four vec4s and two scalars, or through the
// upsampling source columns h - 1 .. h + 8 (h = x0 / 2): two vec4s read twice and two scalars.
struct RowTaps {
  left: u32,
  m0: u32,
  m1: u32,
  m2: u32,
  m3: u32,
  right: u32,
  ok: u32,   // bit j: column x0 - 1 + j lies inside the image
}

fn row_taps(iy: i32, x0: u32, upsample: bool, col_ok: u32) -> RowTaps {
  let start = src_row(iy) * params.src_width;
  let h = x0 >> params.upsample;
  let q = (start + h) / 4u;
  let right = min(select(h + 16u, h + 8u, upsample), params.src_width - 1u);
  return RowTaps(start + max(h, 1u) - 1u, q, q + 1u, select(q + 2u, q, upsample), select(q + 3u, q + 1u, upsample),
                 start + right, select(0u, col_ok, inside(iy, params.in_height)));
}

fn load_row(plane: u32, t: RowTaps, upsample: bool) -> array<f32, 18> {
  let p4 = plane / 4u;
  let a = vec4<f32>(input4[p4 + t.m0]);
  let b = vec4<f32>(input4[p4 + t.m1]);
  let c = vec4<f32>(input4[p4 + t.m2]);
  let d = vec4<f32>(input4[p4 + t.m3]);
  let l = f32(input[plane + t.left]);
  let r = f32(input[plane + t.right]);
  // Written out rather than looped over j: naga (Deno's wgpu) keeps such a loop, and its arrays
  // in memory.
  let ok = t.ok;
  return array<f32, 18>(
    tap(l, l, upsample, ok, 0u), tap(a.x, a.x, upsample, ok, 1u), tap(a.y, a.x, upsample, ok, 2u),
    tap(a.z, a.y, upsample, ok, 3u), tap(a.w, a.y, upsample, ok, 4u), tap(b.x, a.z, upsample, ok, 5u),
    tap(b.y, a.z, upsample, ok, 6u), tap(b.z, a.w, upsample, ok, 7u), tap(b.w, a.w, upsample, ok, 8u),
    tap(c.x, b.x, upsample, ok, 9u), tap(c.y, b.x, upsample, ok, 10u), tap(c.z, b.y, upsample, ok, 11u),
    tap(c.w, b.y, upsample, ok, 12u), tap(d.x, b.z, upsample, ok, 13u), tap(d.y, b.z, upsample, ok, 14u),
    tap(d.z, b.w, upsample, ok, 15u), tap(d.w, b.w, upsample, ok, 16u), tap(r, r, upsample, ok, 17u));
}

// Column j of a row: the flat value, or through the upsampling the repeated one; 0 outside the image.
fn tap(flat: f32, up: f32, upsample: bool, ok: u32, j: u32) -> f32 {
  return select(0.0, select(flat, up, upsample), (ok & (1u << j)) != 0u);
}

// acc[p] += w * x_p for the 16 pixels, written out: naga (Deno's wgpu) leaves a loop here rolled,
// and llvmpipe then keeps the accumulators in memory (docs/perf.md).
fn mac_row(acc: ptr<function, array<Pixel, 16>>, w: Pixel, v: ptr<function, array<f32, 18>>, kx: u32) {
  (*acc)[0] = mac((*acc)[0], w, (*v)[kx + 0u]);
  (*acc)[1] = mac((*acc)[1], w, (*v)[kx + 1u]);
  (*acc)[2] = mac((*acc)[2], w, (*v)[kx + 2u]);
  (*acc)[3] = mac((*acc)[3], w, (*v)[kx + 3u]);
  (*acc)[4] = mac((*acc)[4], w, (*v)[kx + 4u]);
  (*acc)[5] = mac((*acc)[5], w, (*v)[kx + 5u]);
  (*acc)[6] = mac((*acc)[6], w, (*v)[kx + 6u]);
  (*acc)[7] = mac((*acc)[7], w, (*v)[kx + 7u]);
  (*acc)[8] = mac((*acc)[8], w, (*v)[kx + 8u]);
  (*acc)[9] = mac((*acc)[9], w, (*v)[kx + 9u]);
  (*acc)[10] = mac((*acc)[10], w, (*v)[kx + 10u]);
  (*acc)[11] = mac((*acc)[11], w, (*v)[kx + 11u]);
  (*acc)[12] = mac((*acc)[12], w, (*v)[kx + 12u]);
  (*acc)[13] = mac((*acc)[13], w, (*v)[kx + 13u]);
  (*acc)[14] = mac((*acc)[14], w, (*v)[kx + 14u]);
  (*acc)[15] = mac((*acc)[15], w, (*v)[kx + 15u]);
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let cell = min(gid.x, params.blocks - 1u);
  let oc8 = wid.y + params.oc_block0;
  let bx = cell % params.row_blocks;
  let row = cell / params.row_blocks;
  let oy = row % params.out_height;
  let n = row / params.out_height;
  let ox0 = bx * PX;
  let src_plane = params.src_height * params.src_width;
  let first_plane = (n * params.src_channels + params.in_channel0) * src_plane;

  var acc: array<Pixel, 16>;
  if (params.path == 1u) {
    var col_ok = 0u;
    for (var j = 0u; j < 18u; j++) {
      col_ok |= select(0u, 1u << j, inside(i32(ox0 + j) - 1, params.in_width));
    }
    let upsample = params.upsample != 0u;
    let iy = i32(oy) - i32(params.pad_top);
    let taps = array<RowTaps, 3>(row_taps(iy, ox0, upsample, col_ok), row_taps(iy + 1, ox0, upsample, col_ok),
                                 row_taps(iy + 2, ox0, upsample, col_ok));
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let plane = first_plane + ic * src_plane;
      for (var ky = 0u; ky < 3u; ky++) {
        var v = load_row(plane, taps[ky], upsample);
        for (var kx = 0u; kx < 3u; kx++) {
          mac_row(&acc, load_weights(ic * 9u + ky * 3u + kx, oc8), &v, kx);
        }
      }
    }
  } else {
    let q = ox0 / 4u;
    for (var ic = 0u; ic < params.in_channels; ic++) {
      let x = array<vec4<f32>, 4>(input_quad(n, ic, q), input_quad(n, ic, q + 1u), input_quad(n, ic, q + 2u), input_quad(n, ic, q + 3u));
      let w = load_weights(ic, oc8);
      for (var p = 0u; p < PX; p++) {
        acc[p] = mac(acc[p], w, x[p / 4u][p % 4u]);
      }
    }
  }

  if (gid.x >= params.blocks) {
    return;
  }
  let out_pixels = params.out_height * params.out_width;
  let pixel = oy * params.out_width + ox0;
  let oc0 = oc8 * OC;
  // The pixels are stored in a loop the compiler cannot unroll (its count is not a constant), from
  // a copy, so that `acc` stays in registers: unrolled, the 16 x 8 stores and their residual and
  // channel_add reads were thousands of llvmpipe's per-lane branches, and compiling this shader
  // took 9 s instead of 0.7 s (docs/perf.md, "The first run's compile").
  let stored = min(PX, params.out_width - ox0);
  var results = acc;
  for (var p = 0u; p < stored; p++) {
    store_pixel(results[p], n, oc0, pixel + p, out_pixels);
  }
}
