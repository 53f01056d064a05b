// The register convs' weights through a uniform binding: a 64 KiB window holding the output-channel
// blocks oc_block0 .. of this dispatch, each block's rows contiguous ([block][row][8 channels]).
// On llvmpipe a uniform-buffer load at a workgroup-uniform offset is a single scalar load, while
// a storage load at the same offset takes a bounds-checked branch per component, which splits
// the multiply-add blocks: the convs run 1.3-2.4x faster so (docs/perf.md, issue 11).
@group(0) @binding(2) var<uniform> weight: array<vec4<f32>, 4096>;

fn load_weights(row: u32, oc8: u32) -> Pixel {
  let i = (oc8 - params.oc_block0) * params.weight_block_vec4s + 2u * row;
  return Pixel(weight[i], weight[i + 1u]);
}
