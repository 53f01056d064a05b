// conv2d.wgsl's convolution (same epilogue, same weight layout) for real GPUs, with GroupNorm (+
// SiLU) of its input as an optional prologue; the body is shaders/include/conv_tiled.wgsl. Eight
// storage buffers, WebGPU's default limit (conv2d_tiled_shortcut.wgsl adds a resnet's shortcut).

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> input_b: array<f32>;
@group(0) @binding(2) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> channel_add: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;
@group(0) @binding(7) var<storage, read_write> output: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

// No shortcut here: shortcut_channels is 0, so the body never calls this.
fn shortcut_value(n: u32, ic: u32, offset: u32) -> f32 {
  return 0.0;
}

#include "conv_tiled.wgsl"

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) index: u32) {
  conv_tiled(wid, lid, index);
}
