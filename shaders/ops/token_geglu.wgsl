// diffusers' GEGLU over the tokens of a token-major tensor: one nn.Linear x [rows, in] times
// weight [2 * out, in] (PyTorch's layout) plus bias [2 * out], split in two halves along the
// features, the first (hidden) times the exact gelu of the second (gate):
//   y[r, o] = (x[r] . weight[o] + bias[o]) * gelu(x[r] . weight[out + o] + bias[out + o])
// Both halves are computed by the same invocation, so the 2 * out projection is never stored.
//
// Register-blocked as token_linear.wgsl (see there), whose 8 weight rows per invocation are here
// the hidden and gate rows of 4 outputs: ROWS rows x (4 + 4) accumulators in registers, the lanes
// of a workgroup taking consecutive row blocks and sharing the output block (workgroup_id.y), or
// with few rows (lanes = 1) the other way round.

#include "activation.wgsl"
#include "gelu.wgsl"
#include "token_blocks.wgsl"

const OUTS: u32 = 4u;  // outputs per invocation (their hidden and gate rows: 8 weight rows)

struct Params {
  rows: u32,
  in_features: u32,
  out_features: u32,
  row_blocks: u32,  // ceil(rows / ROWS)
  out_blocks: u32,  // ceil(out_features / OUTS)
  lanes: u32,       // 0: the lanes take row blocks (workgroup_id.y the output block), 1: output blocks
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

// a.lo: the hidden halves of outputs o0 .. o0 + 3, a.hi: their gates.
fn store_row(a: Outs, row: u32, o0: u32) {
  store(a.lo.x, a.hi.x, row, o0);
  store(a.lo.y, a.hi.y, row, o0 + 1u);
  store(a.lo.z, a.hi.z, row, o0 + 2u);
  store(a.lo.w, a.hi.w, row, o0 + 3u);
}

// Where the block's 8 weight rows start (in elements, or vec4s: `length` per row): the hidden rows
// of outputs o0 .. o0 + 3, then their gate rows, the outputs clamped to the last: outputs past it
// are computed from a real row and not stored.
fn block_weight_rows(o0: u32, length: u32) -> array<u32, 8> {
  let last = params.out_features - 1u;
  var starts: array<u32, 8>;
  for (var j = 0u; j < 4u; j++) {
    let o = min(o0 + j, last);
    starts[j] = o * length;
    starts[j + 4u] = (params.out_features + o) * length;
  }
  return starts;
}

#include "token_blocks_main.wgsl"
