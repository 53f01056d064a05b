// Attention in one dispatch (shaders/include/attention_common.wgsl), for GPUs: a head's output
// channels are split over invocations of at most CHUNK (each recomputes the scores) for
// parallelism at small batches, and each keeps its output so far in registers (CHUNK vec4s, the
// loops over them of constant count), written once at the end: no round trip through memory per
// step over the keys.

#include "attention_common.wgsl"

const CHUNK: u32 = 16u;  // the most output channels per invocation (the host splits heads to match)

@group(0) @binding(2) var<storage, read_write> out: array<act>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= params.invocations) {
    return;
  }
  let w = work_of(index);
  let L = params.length;
  var peak = vec4<f32>(-3.4e38);
  var total = vec4<f32>(0.0);
  var acc: array<vec4<f32>, CHUNK>;
  for (var c = 0u; c < CHUNK; c++) {
    acc[c] = vec4<f32>(0.0);
  }
  for (var j0 = 0u; j0 < L; j0 += KEYS) {
    let step = key_step(w, j0, &peak, &total);
    for (var c = 0u; c < CHUNK; c++) {
      if (w.e0 + c < w.e1) {
        acc[c] = fma(step.keep, acc[c], weighted_values(w, step, w.e0 + c, j0));
      }
    }
  }
  for (var c = 0u; c < CHUNK; c++) {
    if (w.e0 + c < w.e1) {
      store_output(w.o_start + (w.e0 + c) * L, w.i0, acc[c]);
    }
  }
}
