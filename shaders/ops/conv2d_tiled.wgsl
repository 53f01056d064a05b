// conv2d.wgsl's convolution (same epilogue, same weight layout) for real GPUs, with GroupNorm (+
// SiLU) of its input as an optional prologue: the 'tiled' family, 64 output channels x 64 output
// pixels per workgroup, 4 x 4 per invocation. The body is shaders/include/conv_tiled.wgsl;
// conv2d_tiled_shortcut.wgsl adds a resnet's shortcut.

const TILE_OC: u32 = 64u;
const TILE_PX: u32 = 64u;
const TILE_K: u32 = 16u;

#include "conv_tiled_plain.wgsl"
#include "conv_tiled.wgsl"
