// The 'tiled-wide' family: conv2d_tiled.wgsl with 64 output channels x 128 output pixels per
// workgroup, 4 channels x 8 pixels per invocation, the shape of the WebGPU f32 matmul records
// (issue 11: 128 x 64 tiles, 4 x 8 per invocation reached 82% of an A100's f32 peak under Dawn).
// Twice the pixels per staged weight, in 15 KiB of workgroup memory (16 KiB: WebGPU's default).

const TILE_OC: u32 = 64u;
const TILE_PX: u32 = 128u;
const TILE_K: u32 = 16u;

#include "conv_tiled_plain.wgsl"
#include "conv_tiled.wgsl"
