// Token-major attention for GPUs (shaders/include/token_attention_tiled.wgsl) for head dims up to
// 80: 5 blocks of 16 output columns per invocation (SD 1.5's 40 and 80, SD 2.x's 64).

const COLUMN_BLOCKS: u32 = 5u;

#include "token_attention_tiled.wgsl"
