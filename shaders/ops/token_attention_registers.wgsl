// Token-major attention for software drivers (shaders/include/token_attention_registers.wgsl) for
// head dims up to 80: 20 vec4s of each query's output row per invocation.

const MAX_QUADS: u32 = 20u;

#include "token_attention_registers.wgsl"
