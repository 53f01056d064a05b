// A linear layer over the tokens of a token-major tensor: x [rows, in] (rows = batch * tokens)
// times weight [out, in] (PyTorch's nn.Linear layout) plus bias, then an optional activation,
// then an optional residual [rows, out]:
//   y[r, o] = activation(sum_i x[r, i] * weight[o, i] + bias[o]) + residual[r, o]
// Activations: 0 none, 1 quick_gelu x * sigmoid(1.702 x) (CLIP), 2 gelu 0.5 x (1 + erf(x / sqrt 2))
// (torch's exact form).
//
// Register-blocked for software drivers, as the register convs (conv2d_main.wgsl's header): there
// an invocation is one lane of an 8-wide SIMD loop and every storage load costs as much as tens of
// multiply-adds, so an invocation keeps ROWS rows x 8 outputs in registers (an x vec4 feeds the 8
// outputs of its row, a weight vec4 the ROWS rows of its output), with no workgroup memory. The
// lanes of a workgroup take consecutive row blocks and share the block of 8 outputs
// (workgroup_id.y), so a weight load has the same address in every lane; where rows are few
// (lanes = 1: tokenBlocks in src/ops/token_linear.ts) they take output blocks and workgroup_id.y
// is the row block. With in_features a multiple of 4 (every UNet and CLIP layer) x and the weight
// rows are read as vec4s (input4, weight4: the same tensors); otherwise one value at a time, with
// the same blocking.

#include "activation.wgsl"
#include "gelu.wgsl"
#include "token_blocks.wgsl"

const OUTS: u32 = 8u;  // outputs per invocation

struct Params {
  rows: u32,
  in_features: u32,
  out_features: u32,
  activation: u32,
  has_bias: u32,
  has_residual: u32,
  row_blocks: u32,  // ceil(rows / ROWS)
  out_blocks: u32,  // ceil(out_features / OUTS)
  lanes: u32,       // 0: the lanes take row blocks (workgroup_id.y the output block), 1: output blocks
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read> input4: array<vec4<act>>;  // the same tensor, as vec4s
@group(0) @binding(2) var<storage, read> weight: array<weight_t>;
@group(0) @binding(3) var<storage, read> weight4: array<vec4<weight_t>>;  // the same tensor, as vec4s
@group(0) @binding(4) var<storage, read> bias: array<act>;
@group(0) @binding(5) var<storage, read> residual: array<act>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;
@group(0) @binding(7) var<uniform> params: Params;

fn activate(x: f32) -> f32 {
  if (params.activation == 1u) {
    // x / (1 + exp(-1.702 x)): exp overflows to inf for very negative x, giving the right 0.
    return x / (1.0 + exp(-1.702 * x));
  }
  if (params.activation == 2u) {
    return gelu(x);
  }
  return x;
}

fn store(v: f32, row: u32, o: u32) {
  if (o >= params.out_features) {
    return;
  }
  var y = v;
  if (params.has_bias != 0u) {
    y += f32(bias[o]);
  }
  y = activate(y);
  let index = row * params.out_features + o;
  if (params.has_residual != 0u) {
    y += f32(residual[index]);
  }
  output[index] = act(y);
}

fn store_row(a: Outs, row: u32, o0: u32) {
  store(a.lo.x, row, o0);
  store(a.lo.y, row, o0 + 1u);
  store(a.lo.z, row, o0 + 2u);
  store(a.lo.w, row, o0 + 3u);
  store(a.hi.x, row, o0 + 4u);
  store(a.hi.y, row, o0 + 5u);
  store(a.hi.z, row, o0 + 6u);
  store(a.hi.w, row, o0 + 7u);
}

// Where weight rows o0 .. o0 + 7 start (in elements, or vec4s: `length` per row), the outputs
// clamped to the last: outputs past it are computed from a real row and not stored.
fn block_weight_rows(o0: u32, length: u32) -> array<u32, 8> {
  var starts: array<u32, 8>;
  for (var j = 0u; j < 8u; j++) {
    starts[j] = min(o0 + j, params.out_features - 1u) * length;
  }
  return starts;
}

#include "token_blocks_main.wgsl"
