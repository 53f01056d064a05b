// One DDIM update (Song et al. 2020, eq. 12), in place on the sample x:
//   x0 = (x − sqrt(1 − ᾱ_t)·ε) / sqrt(ᾱ_t)      (clipped to ±clip_range when clip != 0)
//   x' = sqrt(ᾱ_t')·x0 + sqrt(1 − ᾱ_t' − σ²)·ε + σ·z
// The host computes the scalars in float64 (src/sampler/schedule.ts). Encoding (the ODE run
// forward) is the same update with σ = 0 towards a noisier ᾱ.

struct Params {
  count: u32,
  inv_sqrt_alpha: f32,
  sqrt_one_minus_alpha: f32,
  coef_x0: f32,
  dir_coef: f32,
  sigma: f32,
  clip: u32,
  clip_range: f32,
}

@group(0) @binding(0) var<storage, read> eps: array<f32>;
@group(0) @binding(1) var<storage, read> noise: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> x0_pred: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let e = eps[i];
  var x0 = (x[i] - params.sqrt_one_minus_alpha * e) * params.inv_sqrt_alpha;
  if (params.clip != 0u) {
    x0 = clamp(x0, -params.clip_range, params.clip_range);
  }
  x0_pred[i] = x0;
  var next = params.coef_x0 * x0 + params.dir_coef * e;
  if (params.sigma != 0.0) {
    next += params.sigma * noise[i];
  }
  x[i] = next;
}
