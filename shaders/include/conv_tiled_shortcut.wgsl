// The tiled conv with a resnet's conv_shortcut folded in (conv2d_tiled_shortcut.wgsl and its
// other tile shapes): output = conv(norm(input)) + bias + conv_shortcut(shortcut), the 1x1
// shortcut as more depth of the same GEMM (its weights stacked under the conv's, its bias added to
// the conv's). The shortcut input may be two tensors side by side in channels (an up block's
// [x, skip], read in place). Ten storage buffers: the graph uses it only where the device allows
// that many. The variant includes this, then its body (conv_tiled.wgsl).

// Bindings 0-6 (the inputs both share) are conv_tiled_common.wgsl's.
@group(0) @binding(7) var<storage, read> shortcut: array<act>;
@group(0) @binding(8) var<storage, read> shortcut_b: array<act>;
@group(0) @binding(9) var<storage, read_write> output: array<act>;
@group(0) @binding(10) var<uniform> params: Params;

// Value `offset` of shortcut channel ic of image n; the shortcut's planes are the output's size.
fn shortcut_value(n: u32, ic: u32, offset: u32) -> f32 {
  let plane = params.out_height * params.out_width;
  if (ic < params.shortcut_channels_a) {
    return f32(shortcut[(n * params.shortcut_channels_a + ic) * plane + offset]);
  }
  let cb = params.shortcut_channels - params.shortcut_channels_a;
  return f32(shortcut_b[(n * cb + ic - params.shortcut_channels_a) * plane + offset]);
}
