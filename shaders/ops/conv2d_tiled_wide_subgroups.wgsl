// The 'tiled-wide-subgroups' family: conv2d_tiled_wide.wgsl's tiles (64 output channels x 128
// output pixels, 4 x 8 per invocation) with the weights passed by subgroupShuffle
// (shaders/include/conv_tiled_subgroups.wgsl), for adapters with the `subgroups` feature.
enable subgroups;
// Shuffles run where the lanes of a subgroup agree (a subgroup-uniform branch), which WGSL's
// analysis cannot see past a ballot.
diagnostic(off, subgroup_uniformity);

const TILE_OC: u32 = 64u;
const TILE_PX: u32 = 128u;
const TILE_K: u32 = 16u;

#include "conv_tiled_plain.wgsl"
#include "conv_tiled_subgroups.wgsl"
