// One sampler update, in place on the sample x, from the model output m (ε, x0 or v):
//   x0 = (x0_from_x·x + x0_from_out·m)·x0_scale   (clipped to ±clip_range when clip != 0)
//   ε  = eps_from_x·x + eps_from_out·m
//   x' = coef_x0·x0 + dir_coef·ε + coef_x·x + σ·z
// DDIM (Song et al. 2020, eq. 12) has coef_x = 0; the paper's σ̂ sampler (the posterior mean)
// has dir_coef = 0. For an ε model x0 = (x − sqrt(1 − ᾱ_t)·ε) / sqrt(ᾱ_t), rounded as before.
// The host computes the scalars in float64 (src/sampler/schedule.ts). Encoding (the ODE run
// forward) is the same update with σ = 0 towards a noisier ᾱ.

struct Params {
  count: u32,
  x0_from_x: f32,
  x0_from_out: f32,
  x0_scale: f32,
  eps_from_x: f32,
  eps_from_out: f32,
  coef_x0: f32,
  dir_coef: f32,
  coef_x: f32,
  sigma: f32,
  clip: u32,
  clip_range: f32,
  // Dynamic thresholding (threshold.wgsl found each image's s): x0 = clamp(x0, ±s) / s.
  threshold: u32,
  per_image: u32,
}

@group(0) @binding(0) var<storage, read> eps: array<f32>;
@group(0) @binding(1) var<storage, read> noise: array<f32>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> x0_pred: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let m = eps[i];
  let xi = x[i];
  var x0 = (params.x0_from_x * xi + params.x0_from_out * m) * params.x0_scale;
  if (params.threshold != 0u) {
    let s = scales[i / params.per_image];
    x0 = clamp(x0, -s, s) / s;
  } else if (params.clip != 0u) {
    x0 = clamp(x0, -params.clip_range, params.clip_range);
  }
  x0_pred[i] = x0;
  let e = params.eps_from_x * xi + params.eps_from_out * m;
  var next = params.coef_x0 * x0 + params.dir_coef * e;
  if (params.coef_x != 0.0) {
    next += params.coef_x * xi;
  }
  if (params.sigma != 0.0) {
    next += params.sigma * noise[i];
  }
  x[i] = next;
}
