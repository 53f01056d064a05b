// Token-major attention for GPUs (shaders/include/token_attention_tiled.wgsl) for head dims up to
// 160 (SD 1.5's innermost blocks): 10 blocks of 16 output columns per invocation.

const COLUMN_BLOCKS: u32 = 10u;

#include "token_attention_tiled.wgsl"
