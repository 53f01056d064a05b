// Seeded standard-normal noise, one element per invocation: Philox4x32-10 keyed by the 64-bit
// seed and counted by (element / 4, image, stream, 0), then Box–Muller. The buffer holds
// consecutive images of per_image values each, the first being image first_image: an image's
// noise depends on its index and the stream, never on how images are batched. `src/sampler/noise.ts`
// (philoxNormals) is its CPU twin and documents the exact mapping; keep the two in step.

struct Params {
  count: u32,
  seed_lo: u32,
  seed_hi: u32,
  stream: u32,
  per_image: u32,
  first_image: u32,
}

@group(0) @binding(0) var<storage, read_write> noise: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

const PHILOX_M0: u32 = 0xd2511f53u;
const PHILOX_M1: u32 = 0xcd9e8d57u;
const PHILOX_W0: u32 = 0x9e3779b9u;
const PHILOX_W1: u32 = 0xbb67ae85u;
const PI: f32 = 3.14159265358979;

// WGSL has no 64-bit integers: the high word of a 32x32-bit product is assembled from 16-bit
// halves, whose partial products and carries all fit in u32.
fn mul_hi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let lh = a_lo * b_hi;
  let hl = a_hi * b_lo;
  let carry = ((a_lo * b_lo) >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return a_hi * b_hi + (lh >> 16u) + (hl >> 16u) + (carry >> 16u);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var round = 0u; round < 10u; round++) {
    if (round > 0u) {
      k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    let hi0 = mul_hi(PHILOX_M0, c.x);
    let lo0 = PHILOX_M0 * c.x; // u32 multiplication wraps: the low word
    let hi1 = mul_hi(PHILOX_M1, c.z);
    let lo1 = PHILOX_M1 * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

// (w >> 9 + 0.5) / 2^23: 24 significant bits, exact in f32, never 0 (so log is finite) nor 1.
fn to_uniform(word: u32) -> f32 {
  return (f32(word >> 9u) + 0.5) * (1.0 / 8388608.0);
}

// ln(u) accurate relative to its size. GPU log is only held to an absolute error near 1 (Vulkan:
// 2^-21 on [0.5, 2]), and the Box–Muller radius √(−2 ln u) turns that into errors of 1e-5 and
// more when u is near 1. There ln(u) = 2·atanh(s), s = (u − 1)/(u + 1), |s| ≤ 1/3, whose series
// has converged to f32 precision by the s^17 term; u − 1 is exact in f32 on [0.5, 1].
fn log_uniform(u: f32) -> f32 {
  if (u < 0.5) {
    return log(u);
  }
  let s = (u - 1.0) / (u + 1.0);
  let z = s * s;
  var series = 1.0 / 17.0;
  series = series * z + 1.0 / 15.0;
  series = series * z + 1.0 / 13.0;
  series = series * z + 1.0 / 11.0;
  series = series * z + 1.0 / 9.0;
  series = series * z + 1.0 / 7.0;
  series = series * z + 1.0 / 5.0;
  series = series * z + 1.0 / 3.0;
  series = series * z + 1.0;
  return 2.0 * s * series;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  // Rows of the grid continue the element index, so counts beyond 65535 workgroups can use y.
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let element = i % params.per_image;
  let image = params.first_image + i / params.per_image;
  let words = philox4x32_10(vec4<u32>(element >> 2u, image, params.stream, 0u), vec2<u32>(params.seed_lo, params.seed_hi));
  // Elements 0,1 of a block come from words (x, y), elements 2,3 from (z, w).
  let lane = element & 3u;
  let pair = select(words.xy, words.zw, lane >= 2u);
  let radius = sqrt(-2.0 * log_uniform(to_uniform(pair.x)));
  // 2u − 1 is exact, so the angle is f32(π) times it, rounded once: the CPU rounds it the same.
  let angle = PI * (2.0 * to_uniform(pair.y) - 1.0);
  noise[i] = select(radius * cos(angle), radius * sin(angle), (lane & 1u) == 1u);
}
