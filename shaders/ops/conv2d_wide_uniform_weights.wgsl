// conv2d_wide.wgsl with its weights read through a uniform binding (conv_weights_uniform.wgsl).
#include "conv_registers.wgsl"
#include "conv_weights_uniform.wgsl"
#include "conv2d_wide_main.wgsl"
