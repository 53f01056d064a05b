// Classifier-free guidance: the network ran on the batch [negative, positive] (each half `count`
// values), and the sampler steps with ε = ε_neg + g·(ε_pos − ε_neg), as diffusers'
// StableDiffusionPipeline combines noise_pred_uncond and noise_pred_text, in f32.

struct Params {
  count: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> both: array<f32>;
@group(0) @binding(1) var<storage, read_write> guided: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let negative = both[i];
  guided[i] = negative + params.scale * (both[params.count + i] - negative);
}
