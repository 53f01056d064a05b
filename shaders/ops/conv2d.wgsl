// The main body is conv2d_main.wgsl; here the weights are a storage buffer.
#include "conv_registers.wgsl"
#include "conv_weights_storage.wgsl"
#include "conv2d_main.wgsl"
