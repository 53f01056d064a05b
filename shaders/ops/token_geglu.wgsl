// diffusers' GEGLU over the tokens of a token-major tensor: one nn.Linear x [rows, in] times
// weight [2 * out, in] (PyTorch's layout) plus bias [2 * out], split in two halves along the
// features, the first (hidden) times the exact gelu of the second (gate):
//   y[r, o] = (x[r] . weight[o] + bias[o]) * gelu(x[r] . weight[out + o] + bias[out + o])
// Both halves are computed by the same invocation, so the 2 * out projection is never stored.
//
// Register-blocked as token_linear.wgsl (see there): an invocation keeps ROWS rows x 8 outputs of
// both halves in registers (each x vec4 feeds 16 weight rows), the lanes of a workgroup take
// consecutive row blocks and share the output block (workgroup_id.y).

#include "activation.wgsl"
#include "gelu.wgsl"
#include "token_blocks.wgsl"

struct Params {
  rows: u32,
  in_features: u32,
  out_features: u32,
  row_blocks: u32,  // ceil(rows / ROWS)
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> input4: array<vec4<act>>;  // the same tensor, as vec4s
@group(0) @binding(2) var<storage, read> weight: array<weight_t>;
@group(0) @binding(3) var<storage, read> weight4: array<vec4<weight_t>>;  // the same tensor, as vec4s
@group(0) @binding(4) var<storage, read> bias: array<act>;
@group(0) @binding(5) var<storage, read_write> output: array<act>;
@group(0) @binding(6) var<uniform> params: Params;

fn store(hidden: f32, gate: f32, row: u32, o: u32) {
  if (o >= params.out_features) {
    return;
  }
  let h = hidden + f32(bias[o]);
  let g = gate + f32(bias[params.out_features + o]);
  output[row * params.out_features + o] = act(h * gelu(g));
}

fn store_row(hidden: Outs, gate: Outs, row: u32, o0: u32) {
  if (row >= params.rows) {
    return;
  }
  store(hidden.lo.x, gate.lo.x, row, o0);
  store(hidden.lo.y, gate.lo.y, row, o0 + 1u);
  store(hidden.lo.z, gate.lo.z, row, o0 + 2u);
  store(hidden.lo.w, gate.lo.w, row, o0 + 3u);
  store(hidden.hi.x, gate.hi.x, row, o0 + 4u);
  store(hidden.hi.y, gate.hi.y, row, o0 + 5u);
  store(hidden.hi.z, gate.hi.z, row, o0 + 6u);
  store(hidden.hi.w, gate.hi.w, row, o0 + 7u);
}


fn quads_at(w: array<u32, 8>, i: u32) -> Quads {
  return Quads(
    vec4<f32>(weight4[w[0] + i]),
    vec4<f32>(weight4[w[1] + i]),
    vec4<f32>(weight4[w[2] + i]),
    vec4<f32>(weight4[w[3] + i]),
    vec4<f32>(weight4[w[4] + i]),
    vec4<f32>(weight4[w[5] + i]),
    vec4<f32>(weight4[w[6] + i]),
    vec4<f32>(weight4[w[7] + i]),
  );
}

fn weights_at(w: array<u32, 8>, i: u32) -> Outs {
  return Outs(
    vec4<f32>(f32(weight[w[0] + i]), f32(weight[w[1] + i]), f32(weight[w[2] + i]), f32(weight[w[3] + i])),
    vec4<f32>(f32(weight[w[4] + i]), f32(weight[w[5] + i]), f32(weight[w[6] + i]), f32(weight[w[7] + i])),
  );
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  // Lanes past the last row block repeat it (their stores are skipped): no early return, so the
  // main loop runs unmasked. Rows past the last are read clamped and not stored.
  let r0 = min(gid.x, params.row_blocks - 1u) * ROWS;
  let last_row = params.rows - 1u;
  let o0 = wid.y * 8u;
  let n = params.in_features;

  var h0: Outs;
  var h1: Outs;
  var h2: Outs;
  var h3: Outs;
  var g0: Outs;
  var g1: Outs;
  var g2: Outs;
  var g3: Outs;
  if (n % 4u == 0u) {
    let quads = n / 4u;
    let x0 = min(r0, last_row) * quads;
    let x1 = min(r0 + 1u, last_row) * quads;
    let x2 = min(r0 + 2u, last_row) * quads;
    let x3 = min(r0 + 3u, last_row) * quads;
    let hidden = weight_rows(0u, o0, params.out_features, quads);
    let gate = weight_rows(params.out_features, o0, params.out_features, quads);
    for (var i = 0u; i < quads; i++) {
      let v0 = vec4<f32>(input4[x0 + i]);
      let v1 = vec4<f32>(input4[x1 + i]);
      let v2 = vec4<f32>(input4[x2 + i]);
      let v3 = vec4<f32>(input4[x3 + i]);
      let qh = quads_at(hidden, i);
      h0 = mac4(h0, v0, qh);
      h1 = mac4(h1, v1, qh);
      h2 = mac4(h2, v2, qh);
      h3 = mac4(h3, v3, qh);
      let qg = quads_at(gate, i);
      g0 = mac4(g0, v0, qg);
      g1 = mac4(g1, v1, qg);
      g2 = mac4(g2, v2, qg);
      g3 = mac4(g3, v3, qg);
    }
  } else {
    let x0 = min(r0, last_row) * n;
    let x1 = min(r0 + 1u, last_row) * n;
    let x2 = min(r0 + 2u, last_row) * n;
    let x3 = min(r0 + 3u, last_row) * n;
    let hidden = weight_rows(0u, o0, params.out_features, n);
    let gate = weight_rows(params.out_features, o0, params.out_features, n);
    for (var i = 0u; i < n; i++) {
      let v0 = f32(input[x0 + i]);
      let v1 = f32(input[x1 + i]);
      let v2 = f32(input[x2 + i]);
      let v3 = f32(input[x3 + i]);
      let sh = weights_at(hidden, i);
      h0 = mac1(h0, v0, sh);
      h1 = mac1(h1, v1, sh);
      h2 = mac1(h2, v2, sh);
      h3 = mac1(h3, v3, sh);
      let sg = weights_at(gate, i);
      g0 = mac1(g0, v0, sg);
      g1 = mac1(g1, v1, sg);
      g2 = mac1(g2, v2, sg);
      g3 = mac1(g3, v3, sg);
    }
  }

  if (gid.x >= params.row_blocks) {
    return;
  }
  store_row(h0, g0, r0, o0);
  store_row(h1, g1, r0 + 1u, o0);
  store_row(h2, g2, r0 + 2u, o0);
  store_row(h3, g3, r0 + 3u, o0);
}
