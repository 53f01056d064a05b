// The tiled conv without a shortcut (conv2d_tiled.wgsl and its other tile shapes): eight storage
// buffers, WebGPU's default limit. The variant includes this, then its body (conv_tiled.wgsl).

// Bindings 0-6 (the inputs both share) are conv_tiled_common.wgsl's.
@group(0) @binding(7) var<storage, read_write> output: array<act>;
@group(0) @binding(8) var<uniform> params: Params;

// No shortcut here: shortcut_channels is 0, so the body never calls this.
fn shortcut_value(n: u32, ic: u32, offset: u32) -> f32 {
  return 0.0;
}
