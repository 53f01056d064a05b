// C = A·B in f32; A is [M, K], B is [K, N], C is [M, N], all row-major. The variant for software
// drivers (llvmpipe): no workgroup memory and no barriers, which are expensive there. Each
// invocation keeps an 8x8 block of C in registers (eight rows, two vec4 columns), reads A as
// vec4 along k and B as vec4 along n. Needs K % 4 == 0 and N % 8 == 0; M may be anything.
// The benchmark's floor (src/profile/matmul.ts): what a plain GEMM reaches on this adapter.

#include "matmul_bindings.wgsl"

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n4 = params.n / 4u;
  let k4 = params.k / 4u;
  let col = gid.x * 2u;          // first of this invocation's two vec4 columns
  let row0 = gid.y * 8u;
  if (col >= n4 || row0 >= params.m) {
    return;
  }
  // Rows past M repeat the last row: the loop stays branch-free; their results are not stored.
  let last = params.m - 1u;
  let r0 = min(row0, last) * k4;
  let r1 = min(row0 + 1u, last) * k4;
  let r2 = min(row0 + 2u, last) * k4;
  let r3 = min(row0 + 3u, last) * k4;
  let r4 = min(row0 + 4u, last) * k4;
  let r5 = min(row0 + 5u, last) * k4;
  let r6 = min(row0 + 6u, last) * k4;
  let r7 = min(row0 + 7u, last) * k4;

  var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
  var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
  var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
  var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
  var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);

  for (var kk = 0u; kk < k4; kk++) {
    // Rows 4kk .. 4kk+3 of B, this invocation's eight columns of each.
    let kb = kk * 4u * n4 + col;
    let b00 = b[kb];            let b01 = b[kb + 1u];
    let b10 = b[kb + n4];       let b11 = b[kb + n4 + 1u];
    let b20 = b[kb + 2u * n4];  let b21 = b[kb + 2u * n4 + 1u];
    let b30 = b[kb + 3u * n4];  let b31 = b[kb + 3u * n4 + 1u];

    var av = a[r0 + kk];
    c00 = fma(vec4(av.x), b00, c00); c01 = fma(vec4(av.x), b01, c01);
    c00 = fma(vec4(av.y), b10, c00); c01 = fma(vec4(av.y), b11, c01);
    c00 = fma(vec4(av.z), b20, c00); c01 = fma(vec4(av.z), b21, c01);
    c00 = fma(vec4(av.w), b30, c00); c01 = fma(vec4(av.w), b31, c01);
    av = a[r1 + kk];
    c10 = fma(vec4(av.x), b00, c10); c11 = fma(vec4(av.x), b01, c11);
    c10 = fma(vec4(av.y), b10, c10); c11 = fma(vec4(av.y), b11, c11);
    c10 = fma(vec4(av.z), b20, c10); c11 = fma(vec4(av.z), b21, c11);
    c10 = fma(vec4(av.w), b30, c10); c11 = fma(vec4(av.w), b31, c11);
    av = a[r2 + kk];
    c20 = fma(vec4(av.x), b00, c20); c21 = fma(vec4(av.x), b01, c21);
    c20 = fma(vec4(av.y), b10, c20); c21 = fma(vec4(av.y), b11, c21);
    c20 = fma(vec4(av.z), b20, c20); c21 = fma(vec4(av.z), b21, c21);
    c20 = fma(vec4(av.w), b30, c20); c21 = fma(vec4(av.w), b31, c21);
    av = a[r3 + kk];
    c30 = fma(vec4(av.x), b00, c30); c31 = fma(vec4(av.x), b01, c31);
    c30 = fma(vec4(av.y), b10, c30); c31 = fma(vec4(av.y), b11, c31);
    c30 = fma(vec4(av.z), b20, c30); c31 = fma(vec4(av.z), b21, c31);
    c30 = fma(vec4(av.w), b30, c30); c31 = fma(vec4(av.w), b31, c31);
    av = a[r4 + kk];
    c40 = fma(vec4(av.x), b00, c40); c41 = fma(vec4(av.x), b01, c41);
    c40 = fma(vec4(av.y), b10, c40); c41 = fma(vec4(av.y), b11, c41);
    c40 = fma(vec4(av.z), b20, c40); c41 = fma(vec4(av.z), b21, c41);
    c40 = fma(vec4(av.w), b30, c40); c41 = fma(vec4(av.w), b31, c41);
    av = a[r5 + kk];
    c50 = fma(vec4(av.x), b00, c50); c51 = fma(vec4(av.x), b01, c51);
    c50 = fma(vec4(av.y), b10, c50); c51 = fma(vec4(av.y), b11, c51);
    c50 = fma(vec4(av.z), b20, c50); c51 = fma(vec4(av.z), b21, c51);
    c50 = fma(vec4(av.w), b30, c50); c51 = fma(vec4(av.w), b31, c51);
    av = a[r6 + kk];
    c60 = fma(vec4(av.x), b00, c60); c61 = fma(vec4(av.x), b01, c61);
    c60 = fma(vec4(av.y), b10, c60); c61 = fma(vec4(av.y), b11, c61);
    c60 = fma(vec4(av.z), b20, c60); c61 = fma(vec4(av.z), b21, c61);
    c60 = fma(vec4(av.w), b30, c60); c61 = fma(vec4(av.w), b31, c61);
    av = a[r7 + kk];
    c70 = fma(vec4(av.x), b00, c70); c71 = fma(vec4(av.x), b01, c71);
    c70 = fma(vec4(av.y), b10, c70); c71 = fma(vec4(av.y), b11, c71);
    c70 = fma(vec4(av.z), b20, c70); c71 = fma(vec4(av.z), b21, c71);
    c70 = fma(vec4(av.w), b30, c70); c71 = fma(vec4(av.w), b31, c71);
  }

  let rows = params.m - row0;
  var o = row0 * n4 + col;
  c[o] = c00; c[o + 1u] = c01;
  if (rows > 1u) { o += n4; c[o] = c10; c[o + 1u] = c11; }
  if (rows > 2u) { o += n4; c[o] = c20; c[o + 1u] = c21; }
  if (rows > 3u) { o += n4; c[o] = c30; c[o + 1u] = c31; }
  if (rows > 4u) { o += n4; c[o] = c40; c[o + 1u] = c41; }
  if (rows > 5u) { o += n4; c[o] = c50; c[o + 1u] = c51; }
  if (rows > 6u) { o += n4; c[o] = c60; c[o + 1u] = c61; }
  if (rows > 7u) { o += n4; c[o] = c70; c[o + 1u] = c71; }
}
