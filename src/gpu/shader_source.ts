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
     * Buffers: the scalar type of its elements, 'act' for activation.wgsl's alias (f32 or f16),
     * 'weight' for its `weight_t` (a large weight: the graph's weightType); 'u32' reads a
     * tensor's raw words, whatever its dtype (a uniform window of weights).
     */
    element?: 'act' | 'weight' | 'f32' | 'f16' | 'i32' | 'u32';
  }[];
  /** Byte layout of the `Params` uniform struct, or null when the shader has none. */
  params: { size: number; fields: Record<string, { offset: number; type: 'u32' | 'i32' | 'f32' }> } | null;
  workgroupSize: number[];
  /** Whether it stores activations as activation.wgsl's `act` (and so has an f16 variant: shaderFor). */
  activations: boolean;
}

/**
 * How a graph stores its activations and weights on the GPU: 'f32'; 'f16' (activations and
 * weights, half the memory and bandwidth, on adapters with `shader-f16`); or 'f16-packed' (the
 * large weights as f16 pairs in u32 words, read with core WGSL's unpack2x16float, activations
 * f32: half the weight memory on any adapter). Arithmetic stays f32 in all three (activation.wgsl).
 */
export type Precision = 'f32' | 'f16' | 'f16-packed';

export const PRECISIONS: readonly Precision[] = ['f32', 'f16', 'f16-packed'];

/** shaders/include/activation.wgsl's declarations of the activation and weight types. */
const ACTIVATION_ALIAS = /^alias act = f32;$/m;
const ACT_F16 = /^const ACT_F16 = false;$/m;
const WEIGHT_F16 = /^const WEIGHT_F16 = false;$/m;

const variants = { 'f16': new WeakMap<ShaderSource, ShaderSource>(), 'f16-packed': new WeakMap<ShaderSource, ShaderSource>() };

/**
 * `shader` as a graph of `precision` runs it: itself for f32 (and for shaders that store no
 * activations, the sampler's); for f16 the same shader with `act` = f16, named `<name>_f16`; for
 * f16-packed, where it reads large weights, the same shader reading them as packed f16
 * (`<name>_f16_packed`: packedWeights), else itself. Bindings, params and workgroup size are the
 * f32 shader's: only element types change.
 */
export function shaderFor(shader: ShaderSource, precision: Precision): ShaderSource {
  if (precision === 'f32' || !shader.activations) return shader;
  if (precision === 'f16-packed' && !readsPackedWeights(shader)) return shader;
  let variant = variants[precision].get(shader);
  if (!variant) {
    variant = precision === 'f16'
      ? { ...shader, name: `${shader.name}_f16`, code: f16Activations(shader) }
      : { ...shader, name: `${shader.name}_f16_packed`, code: packedWeights(shader) };
    variants[precision].set(shader, variant);
  }
  return variant;
}

/** `shader`'s code with `act` = f16 (its weights too: weight_t is act, and a window of raw weight words holds f16). */
function f16Activations(shader: ShaderSource): string {
  const code = shader.code.replace(ACTIVATION_ALIAS, 'alias act = f16;').replace(ACT_F16, 'const ACT_F16 = true;');
  return `enable f16;\n${code.replace(WEIGHT_F16, 'const WEIGHT_F16 = true;')}`;
}

/** Whether `shader` binds a `weight_t` array or reads a window of raw weight words (uses WEIGHT_F16, not only declares it). */
function readsPackedWeights(shader: ShaderSource): boolean {
  const code = shader.code.replace(/\/\/.*$/gm, '');
  return shader.bindings.some((b) => b.element === 'weight') || (code.match(/\bWEIGHT_F16\b/g)?.length ?? 0) > 1;
}

/**
 * `shader`'s code with its `weight_t` arrays as f16 pairs in u32 words: each declaration
 * `NAME: array<weight_t>` becomes `array<u32>` (`array<vec4<weight_t>>`, `array<vec2<u32>>`),
 * every read `NAME[i]` a call `NAME_at(i)` that unpacks the value(s) as f32, and WEIGHT_F16 is
 * true. An f16 tensor's buffer is already those words (element 2k in the low half of word k, as
 * unpack2x16float reads it), so the weights upload as for f16.
 */
function packedWeights(shader: ShaderSource): string {
  let code = shader.code.replace(WEIGHT_F16, 'const WEIGHT_F16 = true;');
  const loaders: string[] = [];
  for (const { name } of shader.bindings.filter((b) => b.element === 'weight')) {
    const declaration = new RegExp(`(var<storage, read> ${name}: )array<(weight_t|vec4<weight_t>)>;`);
    const match = declaration.exec(code);
    if (!match) throw new Error(`${shader.name}: cannot read the declaration of weight binding ${name}`);
    if (new RegExp(`\\b${name}_at\\b`).test(code)) throw new Error(`${shader.name}: ${name}_at is already defined`);
    const vector = match[2] !== 'weight_t';
    code = callsForReads(code.replace(declaration, `$1array<${vector ? 'vec2<u32>' : 'u32'}>;`), name, shader.name);
    loaders.push(
      vector
        ? `fn ${name}_at(i: u32) -> vec4<f32> {\n  let w = ${name}[i];\n  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));\n}`
        : `fn ${name}_at(i: u32) -> f32 {\n  return unpack2x16float(${name}[i >> 1u])[i & 1u];\n}`,
    );
  }
  return `${code}\n${loaders.join('\n')}\n`;
}

/** `code` with every `name[index]` outside comments (and declarations) written `name_at(index)`. */
function callsForReads(code: string, name: string, shader: string): string {
  const read = new RegExp(`\\b${name}\\[`, 'g');
  return code.split('\n').map((line) => {
    const comment = line.indexOf('//');
    const body = comment === -1 ? line : line.slice(0, comment);
    let out = '';
    let from = 0;
    read.lastIndex = 0;
    for (let match = read.exec(body); match; match = read.exec(body)) {
      let depth = 1;
      let end = match.index + match[0].length;
      for (; end < body.length && depth > 0; end++) depth += body[end] === '[' ? 1 : body[end] === ']' ? -1 : 0;
      if (depth > 0) throw new Error(`${shader}: a read of ${name} spans lines: ${line.trim()}`);
      out += `${body.slice(from, match.index)}${name}_at(${body.slice(match.index + match[0].length, end - 1)})`;
      from = end;
      read.lastIndex = end;
    }
    return out + body.slice(from) + line.slice(body.length);
  }).join('\n');
}
