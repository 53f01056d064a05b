// A batch of small matrix products over strided views, for attention:
//   c[z][m, col] = alpha * sum_k a[z][m, k] * b[z][col, k]
// where batch item z = outer * inner_count + inner, and every operand is addressed as
//   offset + outer * stride_outer + inner * stride_inner + row * stride_row + k * stride_k
// (for c, `col` takes the place of k). Attention's q, k and v are channel slices of one NCHW
// projection, the scores are [batch, heads, L, L], and the output goes straight back to NCHW:
// all are such views, so nothing is transposed or copied.
//
// Each invocation keeps an 8 x 8 block of c in registers, with no workgroup memory (the shape
// that suits software drivers, see conv2d.wgsl): per k, 8 values of a and 8 of b feed 64
// multiply-adds. Rows past the end repeat the last one and are not stored.

const BLOCK: u32 = 8u;

struct Params {
  rows: u32,           // m
  cols: u32,           // the rows of b
  depth: u32,          // k
  inner_count: u32,
  items: u32,          // batch items: outer * inner_count
  col_blocks: u32,     // ceil(cols / 8)
  alpha: f32,
  a_offset: u32,
  a_outer: u32,
  a_inner: u32,
  a_row: u32,
  a_k: u32,
  b_offset: u32,
  b_outer: u32,
  b_inner: u32,
  b_row: u32,
  b_k: u32,
  c_offset: u32,
  c_outer: u32,
  c_inner: u32,
  c_row: u32,
  c_col: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn store_row(acc_lo: vec4<f32>, acc_hi: vec4<f32>, base: u32, row: u32, col0: u32) {
  if (row >= params.rows) {
    return;
  }
  let v = array<f32, 8>(acc_lo.x, acc_lo.y, acc_lo.z, acc_lo.w, acc_hi.x, acc_hi.y, acc_hi.z, acc_hi.w);
  let start = base + row * params.c_row;
  for (var j = 0u; j < BLOCK; j++) {
    if (col0 + j < params.cols) {
      c[start + (col0 + j) * params.c_col] = params.alpha * v[j];
    }
  }
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let cell = gid.x;
  let z = gid.y;
  let row_blocks = (params.rows + BLOCK - 1u) / BLOCK;
  let lane_cell = min(cell, row_blocks * params.col_blocks - 1u);
  let row0 = (lane_cell / params.col_blocks) * BLOCK;
  let col0 = (lane_cell % params.col_blocks) * BLOCK;
  let outer = z / params.inner_count;
  let inner = z % params.inner_count;
  let a_base = params.a_offset + outer * params.a_outer + inner * params.a_inner;
  let b_base = params.b_offset + outer * params.b_outer + inner * params.b_inner;

  // Clamped row and column starts: out-of-range ones repeat the last row (never stored).
  var ar: array<u32, 8>;
  var br: array<u32, 8>;
  for (var i = 0u; i < BLOCK; i++) {
    ar[i] = a_base + min(row0 + i, params.rows - 1u) * params.a_row;
    br[i] = b_base + min(col0 + i, params.cols - 1u) * params.b_row;
  }

  var acc: array<vec4<f32>, 16>;  // acc[2 * row + half]: columns 4 * half .. 4 * half + 3
  for (var k = 0u; k < params.depth; k++) {
    let ko = k * params.a_k;
    let kb = k * params.b_k;
    let bl = vec4<f32>(b[br[0] + kb], b[br[1] + kb], b[br[2] + kb], b[br[3] + kb]);
    let bh = vec4<f32>(b[br[4] + kb], b[br[5] + kb], b[br[6] + kb], b[br[7] + kb]);
    for (var i = 0u; i < BLOCK; i++) {
      let x = vec4<f32>(a[ar[i] + ko]);
      acc[2u * i] = fma(x, bl, acc[2u * i]);
      acc[2u * i + 1u] = fma(x, bh, acc[2u * i + 1u]);
    }
  }

  if (cell >= row_blocks * params.col_blocks || z >= params.items) {
    return;
  }
  let c_base = params.c_offset + outer * params.c_outer + inner * params.c_inner;
  for (var i = 0u; i < BLOCK; i++) {
    store_row(acc[2u * i], acc[2u * i + 1u], c_base, row0 + i, col0);
  }
}
