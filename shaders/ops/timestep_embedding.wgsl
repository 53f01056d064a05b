// The sinusoidal timestep embedding of diffusers' Timesteps: for frequency f_j,
//   [sin(t f_j) ..., cos(t f_j) ...] (or cos first with flip_sin_to_cos).
// t f_j reaches ~1000 rad, where GPU sin/cos are only specified to be accurate on [-pi, pi]. So the
// phase is counted in turns: each frequency / 2pi comes from the host in float64 split as
// hi + lo, with hi holding few enough bits that t * hi is exact in f32; fract() of it is then
// exact, and the angle handed to sin/cos lies in [-pi, pi).

#include "activation.wgsl"

struct Params {
  batch: u32,
  dim: u32,
  half_dim: u32,
  flip_sin_to_cos: u32,
}

@group(0) @binding(0) var<storage, read> timesteps: array<i32>;
@group(0) @binding(1) var<storage, read> turns_per_step: array<vec2<f32>>;  // (hi, lo) per frequency
@group(0) @binding(2) var<storage, read_write> output: array<act>;
@group(0) @binding(3) var<uniform> params: Params;

const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let n = gid.y;
  if (j >= params.dim || n >= params.batch) {
    return;
  }
  var value = 0.0;  // an odd dim leaves the last column zero, as diffusers pads it
  if (j < 2u * params.half_dim) {
    let first_half = j < params.half_dim;
    let k = select(j - params.half_dim, j, first_half);
    let t = f32(timesteps[n]);
    let f = turns_per_step[k];
    var turns = fract(t * f.x) + t * f.y;
    turns = turns - round(turns);           // now in [-0.5, 0.5]
    let angle = turns * TWO_PI;
    let use_sin = first_half != (params.flip_sin_to_cos != 0u);
    value = select(cos(angle), sin(angle), use_sin);
  }
  output[n * params.dim + j] = act(value);
}
