// conv2d_tiled.wgsl with a resnet's conv_shortcut folded in: output = conv(norm(input)) + bias
// + conv_shortcut(shortcut), the 1x1 shortcut as more depth of the same GEMM (its weights stacked
// under the conv's, its bias added to the conv's). The shortcut input may be two tensors side by
// side in channels (an up block's [x, skip], read in place). Ten storage buffers: the graph uses
// it only where the device allows that many (src/ops/conv2d.ts).

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> input_b: array<f32>;
@group(0) @binding(2) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> channel_add: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;
@group(0) @binding(7) var<storage, read> shortcut: array<f32>;
@group(0) @binding(8) var<storage, read> shortcut_b: array<f32>;
@group(0) @binding(9) var<storage, read_write> output: array<f32>;
@group(0) @binding(10) var<uniform> params: Params;

// Value `offset` of shortcut channel ic of image n; the shortcut's planes are the output's size.
fn shortcut_value(n: u32, ic: u32, offset: u32) -> f32 {
  let plane = params.out_height * params.out_width;
  if (ic < params.shortcut_channels_a) {
    return shortcut[(n * params.shortcut_channels_a + ic) * plane + offset];
  }
  let cb = params.shortcut_channels - params.shortcut_channels_a;
  return shortcut_b[(n * cb + ic - params.shortcut_channels_a) * plane + offset];
}

#include "conv_tiled.wgsl"

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) index: u32) {
  conv_tiled(wid, lid, index);
}
