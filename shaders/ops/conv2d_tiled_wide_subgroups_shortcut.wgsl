// conv2d_tiled_wide_subgroups.wgsl with a resnet's conv_shortcut folded in
// (shaders/include/conv_tiled_shortcut.wgsl).
enable subgroups;
diagnostic(off, subgroup_uniformity);

const TILE_OC: u32 = 64u;
const TILE_PX: u32 = 128u;
const TILE_K: u32 = 16u;

#include "conv_tiled_shortcut.wgsl"
#include "conv_tiled_subgroups.wgsl"
