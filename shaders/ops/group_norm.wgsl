// GroupNorm over NCHW with an optional SiLU fused after the affine transform.
// A group of one image is a contiguous block of (C / G) * H * W values, and there are few groups
// (N * 32 in a UNet), so one invocation normalizes one whole group: no workgroup memory and no
// barriers (expensive on software drivers, which run an invocation as one SIMD lane; the groups
// of a batch fill the lanes). Statistics in one pass over the group, as sums of x - s for a shift
// s taken from the group's first values, which keeps E[(x-s)^2] - E[x-s]^2 free of catastrophic
// cancellation when the mean is large; four partial sums per statistic (one per vec4 lane).
// Rows a multiple of 4 long are read and written as vec4s, others one value at a time.
// The input may be two tensors side by side in channels (a UNet's skip concatenation, read in
// place rather than copied): channels from channels_a on come from input_b. A group may straddle
// the two; each channel's plane is read from its own tensor.

#include "activation.wgsl"

struct Params {
  channels: u32,
  groups: u32,
  spatial: u32,    // height * width
  items: u32,      // batch * groups
  eps: f32,
  silu: u32,
  channels_a: u32, // the channels of `input`; the rest are input_b's
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> input4: array<vec4<act>>;  // the same tensor, as vec4s
@group(0) @binding(2) var<storage, read> input_b: array<act>;
@group(0) @binding(3) var<storage, read> input_b4: array<vec4<act>>;
@group(0) @binding(4) var<storage, read> gamma: array<act>;
@group(0) @binding(5) var<storage, read> beta: array<act>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;
@group(0) @binding(7) var<uniform> params: Params;

fn activate(v: vec4<f32>) -> vec4<f32> {
  if (params.silu != 0u) {
    return v / (1.0 + exp(-v));
  }
  return v;
}

// Where channel c of image n starts, in its own tensor.
fn plane_start(n: u32, c: u32) -> u32 {
  if (c < params.channels_a) {
    return (n * params.channels_a + c) * params.spatial;
  }
  return (n * (params.channels - params.channels_a) + c - params.channels_a) * params.spatial;
}

// Value i (or quad i) of the plane of channel c, from whichever tensor holds it.
fn value(c: u32, i: u32) -> f32 {
  if (c < params.channels_a) {
    return f32(input[i]);
  }
  return f32(input_b[i]);
}

fn quad(c: u32, i: u32) -> vec4<f32> {
  if (c < params.channels_a) {
    return vec4<f32>(input4[i]);
  }
  return vec4<f32>(input_b4[i]);
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  // Lanes past the last group repeat it and store nothing: the loops run unmasked.
  let item = min(gid.x, params.items - 1u);
  let group = item % params.groups;
  let n = item / params.groups;
  let per_group = params.channels / params.groups;
  let count = per_group * params.spatial;
  let first = group * per_group;
  let vec4_rows = params.spatial % 4u == 0u;

  let shift = value(first, plane_start(n, first));
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  for (var c = first; c < first + per_group; c++) {
    let start = plane_start(n, c);
    if (vec4_rows) {
      for (var i = start / 4u; i < (start + params.spatial) / 4u; i++) {
        let d = quad(c, i) - shift;
        s1 += d;
        s2 = fma(d, d, s2);
      }
    } else {
      for (var i = start; i < start + params.spatial; i++) {
        let d = value(c, i) - shift;
        s1.x += d;
        s2.x = fma(d, d, s2.x);
      }
    }
  }
  let inv_count = 1.0 / f32(count);
  let m1 = (s1.x + s1.y + s1.z + s1.w) * inv_count;
  let variance = max((s2.x + s2.y + s2.z + s2.w) * inv_count - m1 * m1, 0.0);
  let mean = shift + m1;
  let inv_std = inverseSqrt(variance + params.eps);

  if (gid.x >= params.items) {
    return;
  }
  for (var channel = first; channel < first + per_group; channel++) {
    let scale = inv_std * f32(gamma[channel]);
    let offset = f32(beta[channel]) - mean * scale;
    let start = plane_start(n, channel);
    let out = (n * params.channels + channel) * params.spatial;
    if (vec4_rows) {
      for (var i = 0u; i < params.spatial / 4u; i++) {
        let y = activate(fma(quad(channel, start / 4u + i), vec4<f32>(scale), vec4<f32>(offset)));
        output[out + 4u * i] = act(y.x);
        output[out + 4u * i + 1u] = act(y.y);
        output[out + 4u * i + 2u] = act(y.z);
        output[out + 4u * i + 3u] = act(y.w);
      }
    } else {
      for (var i = 0u; i < params.spatial; i++) {
        output[out + i] = act(activate(vec4<f32>(fma(value(channel, start + i), scale, offset))).x);
      }
    }
  }
}
