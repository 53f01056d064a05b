// Softmax along the rows of a [rows, length] matrix, in place (attention scores to probabilities).
// One invocation per row, with no workgroup memory or barriers (cheap on software drivers, and
// the rows are few and short). Online softmax: one pass finds the maximum and the sum of
// exponentials together (rescaling the sum as the maximum grows, without branches), a second writes the result.

struct Params {
  rows: u32,
  length: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = gid.x + gid.y * groups.x * 8u;
  if (row >= params.rows) {
    return;
  }
  let start = row * params.length;
  var peak = -3.4e38;
  var sum = 0.0;
  for (var j = 0u; j < params.length; j++) {
    let v = x[start + j];
    let next = max(peak, v);
    sum = sum * exp(peak - next) + exp(v - next);
    peak = next;
  }
  let inv = 1.0 / sum;
  for (var j = 0u; j < params.length; j++) {
    x[start + j] = exp(x[start + j] - peak) * inv;
  }
}
