// The register blocks token_linear.wgsl and token_geglu.wgsl share: an invocation's ROWS rows x 8
// outputs, kept as one Outs (8 accumulators) per row. Separate variables per row, not an array:
// llvmpipe keeps those in registers (docs/perf.md: a struct of structs cost 1.5x).

const ROWS: u32 = 4u;

// Where rows r0 .. r0 + 3 start, `length` values (or vec4s) each, the rows clamped to `last`: a
// block's rows past the last are read again and not stored.
fn block_row_starts(r0: u32, last: u32, length: u32) -> vec4<u32> {
  return min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * length;
}

// 8 consecutive outputs of one row (or the 8 weights of one input).
struct Outs {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

// The weights of 4 consecutive inputs for each of the 8 outputs: weight[o0 + j, i .. i + 3] is wj.
struct Quads {
  w0: vec4<f32>,
  w1: vec4<f32>,
  w2: vec4<f32>,
  w3: vec4<f32>,
  w4: vec4<f32>,
  w5: vec4<f32>,
  w6: vec4<f32>,
  w7: vec4<f32>,
}

// a + x[i .. i + 3] . weight[o, i .. i + 3] for the 8 outputs.
fn mac4(a: Outs, x: vec4<f32>, q: Quads) -> Outs {
  return Outs(
    a.lo + vec4<f32>(dot(x, q.w0), dot(x, q.w1), dot(x, q.w2), dot(x, q.w3)),
    a.hi + vec4<f32>(dot(x, q.w4), dot(x, q.w5), dot(x, q.w6), dot(x, q.w7)),
  );
}

// a + x[i] * weight[o, i] for the 8 outputs (w: their weights of input i).
fn mac1(a: Outs, x: f32, w: Outs) -> Outs {
  let v = vec4<f32>(x);
  return Outs(fma(w.lo, v, a.lo), fma(w.hi, v, a.hi));
}
