// C = A·B in f32; A is [M, K], B is [K, N], C is [M, N], all row-major. The variant for real
// GPUs: each workgroup of 16x16 invocations computes a 64x64 tile of C, staging 64x16 of A and
// 16x64 of B in workgroup memory per step along k; each invocation accumulates a 4x4 block.
// Needs M % 64 == 0, N % 64 == 0 and K % 16 == 0. (On llvmpipe its barriers make it several
// times slower than matmul.wgsl, the register-blocked variant.)

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

#include "matmul_bindings.wgsl"

// tile_a[k][m / 4]: A transposed, four consecutive rows per vec4; tile_b[k][n / 4].
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n4 = params.n / 4u;
  let k4 = params.k / 4u;
  let tile_row = wid.y * TILE;
  let tile_col4 = wid.x * (TILE / 4u);
  let flat = lid.y * 16u + lid.x;
  // Loading: each invocation fetches one vec4 of A (row flat / 4, k-quad flat % 4) and one of B
  // (k-row flat / 16, column quad flat % 16).
  let a_row = flat / 4u;
  let a_k4 = flat % 4u;
  let b_k = flat / 16u;
  let b_col4 = flat % 16u;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);

  for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
    let av = a[(tile_row + a_row) * k4 + k0 / 4u + a_k4];
    // Scatter the four k values of this row into the transposed tile.
    let kb = a_k4 * 4u;
    let slot = a_row / 4u;
    let lane = a_row % 4u;
    tile_a[(kb + 0u) * 16u + slot][lane] = av.x;
    tile_a[(kb + 1u) * 16u + slot][lane] = av.y;
    tile_a[(kb + 2u) * 16u + slot][lane] = av.z;
    tile_a[(kb + 3u) * 16u + slot][lane] = av.w;
    tile_b[b_k * 16u + b_col4] = b[(k0 + b_k) * n4 + tile_col4 + b_col4];
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let ar = tile_a[kk * 16u + lid.y];
      let bv = tile_b[kk * 16u + lid.x];
      acc0 = fma(vec4(ar.x), bv, acc0);
      acc1 = fma(vec4(ar.y), bv, acc1);
      acc2 = fma(vec4(ar.z), bv, acc2);
      acc3 = fma(vec4(ar.w), bv, acc3);
    }
    workgroupBarrier();
  }

  let row = tile_row + lid.y * 4u;
  let o = row * n4 + tile_col4 + lid.x;
  c[o] = acc0;
  c[o + n4] = acc1;
  c[o + 2u * n4] = acc2;
  c[o + 3u * n4] = acc3;
}
