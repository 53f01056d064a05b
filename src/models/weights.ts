/**
 * Hands out a model's weights by their PyTorch names, checking each shape, and gathers every
 * problem (missing, unexpected, mis-shaped, non-finite) into one error that names them all.
 */
import { float16ToFloat32 } from '../io/half.ts';
import { type SafetensorsFile, type TensorEntry, toFloat32 } from '../io/safetensors.ts';
import { lazyWeight, type WeightArray } from '../ops/weights.ts';

export class ModelWeightsError extends Error {
  override name = 'ModelWeightsError';
}

/** Old checkpoints (google/ddpm-*) name the attention projections differently. */
const LEGACY_ATTENTION_NAMES: [modern: string, legacy: string][] = [
  ['.to_q.', '.query.'],
  ['.to_k.', '.key.'],
  ['.to_v.', '.value.'],
  ['.to_out.0.', '.proj_attn.'],
];

/** What the graph builder asks weights from: each by name, with the shapes it accepts. */
export interface WeightSource {
  take(name: string, ...shapes: number[][]): WeightArray;
}

export class WeightStore implements WeightSource {
  private readonly used = new Set<string>();
  private readonly missing: string[] = [];
  private readonly misShaped: string[] = [];
  private readonly nonFinite: string[] = [];

  /**
   * `check`: read every weight as it is taken, to find NaN and Inf (done once, when a model is
   * read); otherwise values are converted only when a graph uploads them.
   */
  constructor(private readonly file: SafetensorsFile, private readonly options: { check?: boolean } = { check: true }) {}

  private resolveName(name: string): string | undefined {
    if (this.file.tensors.has(name)) return name;
    for (const [modern, legacy] of LEGACY_ATTENTION_NAMES) {
      if (name.includes(modern)) {
        const old = name.replace(modern, legacy);
        if (this.file.tensors.has(old)) return old;
      }
    }
    return undefined;
  }

  /**
   * The weight `name` with one of the accepted `shapes` (a 1x1 conv may be stored as [out, in]).
   * A problem is recorded and zeros of the first shape are returned, so the whole model is
   * checked before one error lists everything wrong.
   */
  take(name: string, ...shapes: number[][]): WeightArray {
    const stored = this.resolveName(name);
    if (!stored) {
      this.missing.push(`${name} [${shapes[0]}]`);
      return { name, shape: shapes[0], data: new Float32Array(shapes[0].reduce((a, b) => a * b, 1)) };
    }
    this.used.add(stored);
    const entry = this.file.tensors.get(stored)!;
    const shape = shapes.find((s) => s.join() === entry.shape.join());
    if (!shape) {
      this.misShaped.push(`${stored}: [${entry.shape}], expected [${shapes[0]}]`);
      return { name, shape: shapes[0], data: new Float32Array(shapes[0].reduce((a, b) => a * b, 1)) };
    }
    if (this.options.check) {
      const bad = firstNonFinite(entry);
      if (bad) this.nonFinite.push(`${stored} (element ${bad.index} is ${bad.value})`);
    }
    // Converted each time a graph uploads it and not kept: the f32 copy lives while its layout is made.
    return lazyWeight(name, shape, () => toFloat32(entry));
  }

  /** Throws if anything was missing, mis-shaped or non-finite, or if weights were left unused. */
  finish(): void {
    const unexpected = [...this.file.tensors.keys()].filter((k) => !this.used.has(k));
    const problems: string[] = [];
    const list = (title: string, items: string[]) => {
      if (items.length) {
        problems.push(
          `${title} (${items.length}):\n  ${items.slice(0, 20).join('\n  ')}${
            items.length > 20 ? `\n  ... and ${items.length - 20} more` : ''
          }`,
        );
      }
    };
    list('missing weights', this.missing);
    list('weights of the wrong shape', this.misShaped);
    list('unexpected weights (not used by this config)', unexpected);
    list('weights holding NaN or Inf', this.nonFinite);
    if (problems.length) throw new ModelWeightsError(`the weights do not match config.json:\n${problems.join('\n')}`);
  }
}

/**
 * The first NaN or ±Inf of a tensor, read in place where the file's bytes are aligned (f32, f16
 * and bf16 by their exponent bits), so that checking a model of gigabytes allocates nothing.
 */
export function firstNonFinite(entry: TensorEntry): { index: number; value: number } | undefined {
  const { bytes, dtype } = entry;
  if (dtype === 'F32' && bytes.byteOffset % 4 === 0) {
    const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return { index: i, value: values[i] };
    return undefined;
  }
  if ((dtype === 'F16' || dtype === 'BF16') && bytes.byteOffset % 2 === 0) {
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    // All exponent bits set: Inf or NaN.
    const exponent = dtype === 'F16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < halves.length; i++) {
      if ((halves[i] & exponent) === exponent) {
        const value = dtype === 'F16' ? float16ToFloat32(halves[i]) : new Float32Array(new Uint32Array([halves[i] << 16]).buffer)[0];
        return { index: i, value };
      }
    }
    return undefined;
  }
  // Other dtypes and unaligned views: one tensor converted, then dropped.
  const values = toFloat32(entry);
  const index = values.findIndex((v) => !Number.isFinite(v));
  return index === -1 ? undefined : { index, value: values[index] };
}
