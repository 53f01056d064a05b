// Dynamic thresholding (Saharia et al. 2022; diffusers' DDIMScheduler._threshold_sample): per
// image, s = clamp(quantile(|x0|, ratio), 1, max_value), found here; the update then clamps x0 to
// ±s and divides by s. One workgroup per image. x0 is formed as the update forms it, from the
// state x and the model output m. The quantile is torch.quantile's (linear between the order
// statistics lo and hi, weight from the host): each order statistic is found exactly by a radix
// select over the bits of |x0| (non-negative floats order as their u32 bits), a byte per round.

struct Params {
  per_image: u32,
  rank_lo: u32,
  rank_hi: u32,
  weight: f32,
  max_value: f32,
  x0_from_x: f32,
  x0_from_out: f32,
  x0_scale: f32,
}

@group(0) @binding(0) var<storage, read> eps: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> scales: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const THREADS: u32 = 256u;

var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> chosen_prefix: u32;
var<workgroup> chosen_rank: u32;

fn abs_bits(i: u32) -> u32 {
  let x0 = (params.x0_from_x * x[i] + params.x0_from_out * eps[i]) * params.x0_scale;
  return bitcast<u32>(abs(x0));
}

/** The value of rank `rank` (0 = smallest) among the image's |x0|. */
fn select_rank(base: u32, rank: u32, lid: u32) -> f32 {
  var prefix = 0u;
  var mask = 0u;
  var k = rank;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    atomicStore(&histogram[lid], 0u);
    workgroupBarrier();
    for (var i = lid; i < params.per_image; i += THREADS) {
      let v = abs_bits(base + i);
      if ((v & mask) == prefix) {
        atomicAdd(&histogram[(v >> shift) & 255u], 1u);
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var below = 0u;
      var bucket = 0u;
      for (var b = 0u; b < 256u; b++) {
        let n = atomicLoad(&histogram[b]);
        if (below + n > k) {
          bucket = b;
          break;
        }
        below += n;
      }
      chosen_prefix = prefix | (bucket << shift);
      chosen_rank = k - below;
    }
    prefix = workgroupUniformLoad(&chosen_prefix);
    k = workgroupUniformLoad(&chosen_rank);
    mask = mask | (255u << shift);
  }
  return bitcast<f32>(prefix);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let image = wid.x;
  let base = image * params.per_image;
  let lo = select_rank(base, params.rank_lo, local.x);
  let hi = select_rank(base, params.rank_hi, local.x);
  if (local.x == 0u) {
    // torch.lerp: one formula below weight 0.5, the other above.
    var q = hi - (hi - lo) * (1.0 - params.weight);
    if (params.weight < 0.5) {
      q = lo + params.weight * (hi - lo);
    }
    scales[image] = clamp(q, 1.0, params.max_value);
  }
}
