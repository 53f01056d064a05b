/** A WGSL shader as embedded by scripts/embed-shaders.mjs, with what reflection found in it. */
export interface ShaderSource {
  name: string;
  /** Where it comes from, from the project root (shaders/<folder>/<name>.wgsl). */
  file: string;
  /** The WGSL, with its includes pasted in. */
  code: string;
  /**
   * In binding order: inputs ('read' storage, or 'read_uniform' for an input bound as a uniform
   * buffer), outputs ('read_write'), then the params 'uniform'.
   */
  bindings: {
    name: string;
    kind: 'read' | 'read_uniform' | 'read_write' | 'uniform';
    /**
     * Buffers: the scalar type of its elements, 'act' for activation.wgsl's alias (f32 or f16);
     * 'u32' reads a tensor's raw words, whatever its dtype (a uniform window of weights).
     */
    element?: 'act' | 'f32' | 'f16' | 'i32' | 'u32';
  }[];
  /** Byte layout of the `Params` uniform struct, or null when the shader has none. */
  params: { size: number; fields: Record<string, { offset: number; type: 'u32' | 'i32' | 'f32' }> } | null;
  workgroupSize: number[];
  /** Whether it stores activations as activation.wgsl's `act` (and so has an f16 variant: shaderFor). */
  activations: boolean;
}

/**
 * How a graph stores its activations and weights on the GPU: 'f32', or 'f16' (half the memory
 * and bandwidth, on adapters with `shader-f16`; arithmetic stays f32, see activation.wgsl).
 */
export type Precision = 'f32' | 'f16';

export const PRECISIONS: readonly Precision[] = ['f32', 'f16'];

/** shaders/include/activation.wgsl's declaration of the activation type. */
const ACTIVATION_ALIAS = /^alias act = f32;$/m;
const ACT_F16 = /^const ACT_F16 = false;$/m;

const f16Variants = new WeakMap<ShaderSource, ShaderSource>();

/**
 * `shader` as a graph of `precision` runs it: itself for f32 (and for shaders that store no
 * activations, the sampler's); for f16 the same shader with `act` = f16, named `<name>_f16`.
 * Bindings, params and workgroup size are the f32 shader's: only element types change.
 */
export function shaderFor(shader: ShaderSource, precision: Precision): ShaderSource {
  if (precision === 'f32' || !shader.activations) return shader;
  let variant = f16Variants.get(shader);
  if (!variant) {
    const code = shader.code.replace(ACTIVATION_ALIAS, 'alias act = f16;').replace(ACT_F16, 'const ACT_F16 = true;');
    variant = { ...shader, name: `${shader.name}_f16`, code: `enable f16;\n${code}` };
    f16Variants.set(shader, variant);
  }
  return variant;
}
