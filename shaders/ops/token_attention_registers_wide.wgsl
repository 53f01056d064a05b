// Token-major attention for software drivers (shaders/include/token_attention_registers.wgsl) for
// head dims up to 160 (SD 1.5's innermost blocks): 40 vec4s of each query's output row per invocation.

const MAX_QUADS: u32 = 40u;

#include "token_attention_registers.wgsl"
