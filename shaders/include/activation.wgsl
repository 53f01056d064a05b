// The element type of the activations and weights a shader keeps in storage: f32 here, f16 in
// the f16 variant of the shader (the engine makes it by replacing this alias and enabling f16:
// src/gpu/shader_source.ts). Values are converted to f32 as they are loaded and arithmetic is
// done in f32, so an f16 variant multiplies f16 operands (their products are exact in f32) and
// accumulates in f32; only what is stored is rounded. ACT_F16 lets a shader read raw words
// (a uniform window of weights) either way; its other branch is compiled out.
alias act = f32;
const ACT_F16 = false;
// The element type of the large weights (conv, linear and embedding tables): `act` here and in
// the f16 variant. The f16-packed variant (f32 activations, f16 weights on adapters without
// shader-f16) rebinds every `array<weight_t>` as f16 pairs in u32 words and reads them through
// unpack2x16float (shaderFor); WEIGHT_F16 says a window of raw weight words holds f16.
alias weight_t = act;
const WEIGHT_F16 = false;
