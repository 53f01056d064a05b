// The register convs' weights through a uniform binding: a 64 KiB window holding the output-channel
// blocks oc_block0 .. of this dispatch, each block's rows contiguous ([block][row][8 channels]).
// On llvmpipe a uniform-buffer load at a workgroup-uniform offset is a single scalar load, while
// a storage load at the same offset takes a bounds-checked branch per component, which splits
// the multiply-add blocks: the convs run 1.3-2.4x faster so (docs/perf.md, issue 11).
// The window is raw words: a row's 8 channels are two vec4s of f32, or one of 8 f16 (so an f16
// window holds twice the channels: WEIGHT_F16). Uniform arrays take 16-byte elements, hence no array<f16>.
@group(0) @binding(2) var<uniform> weight: array<vec4<u32>, 4096>;

fn load_weights(row: u32, oc8: u32) -> Pixel {
  let first = (oc8 - params.oc_block0) * params.weight_block_vec4s;
  if (WEIGHT_F16) {
    let w = weight[first + row];
    return Pixel(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
  }
  let lo = weight[first + 2u * row];
  let hi = weight[first + 2u * row + 1u];
  return Pixel(bitcast<vec4f>(lo), bitcast<vec4f>(hi));
}
