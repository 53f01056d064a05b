// Attention in one dispatch (shaders/include/attention_common.wgsl), for software drivers: the
// output so far lives in an f32 tensor of the output's shape (`running`), kept normalised after
// every step, so an invocation takes any number of a head's channels (all of them here) with a
// fixed register count (only this invocation reads or writes those values); the last step writes
// the output. No workgroup memory and no barriers: on software drivers a workgroup is a loop on
// one CPU core and barriers are expensive, and each step does 16 multiply-adds per vec4 it loads.

#include "attention_common.wgsl"

@group(0) @binding(2) var<storage, read_write> running: array<f32>;  // the output so far
@group(0) @binding(3) var<storage, read_write> out: array<act>;
@group(0) @binding(4) var<uniform> params: Params;

fn running4(start: u32, p: u32) -> vec4<f32> {
  let last = params.length - 1u;
  return vec4<f32>(running[start + min(p, last)], running[start + min(p + 1u, last)], running[start + min(p + 2u, last)],
                   running[start + min(p + 3u, last)]);
}

fn store_running(start: u32, p: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    if (p + i < params.length) {
      running[start + p + i] = v[i];
    }
  }
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * 8u;
  if (index >= params.invocations) {
    return;
  }
  let w = work_of(index);
  let L = params.length;
  var peak = vec4<f32>(-3.4e38);  // the running maximum score of each query
  var total = vec4<f32>(0.0);     // the running sum of exp(score - peak)
  for (var j0 = 0u; j0 < L; j0 += KEYS) {
    let step = key_step(w, j0, &peak, &total);
    let last = j0 + KEYS >= L;
    for (var e = w.e0; e < w.e1; e++) {
      var acc = weighted_values(w, step, e, j0);
      let o_row = w.o_start + e * L;
      // The first step writes the running sum; later ones rescale what is there (never read unwritten).
      if (j0 != 0u) {
        acc = fma(step.keep, running4(o_row, w.i0), acc);
      }
      if (last) {
        store_output(o_row, w.i0, acc);
      } else {
        store_running(o_row, w.i0, acc);
      }
    }
  }
}
