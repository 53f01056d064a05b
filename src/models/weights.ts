/**
 * Hands out a model's weights by their PyTorch names, checking each shape, and gathers every
 * problem (missing, unexpected, mis-shaped, non-finite) into one error that names them all.
 */
import { type SafetensorsFile, toFloat32 } from '../io/safetensors.ts';
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
    const weight = lazyWeight(name, shape, () => toFloat32(entry));
    if (this.options.check) {
      const data = weight.data;
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) {
          this.nonFinite.push(`${stored} (element ${i} is ${data[i]})`);
          break;
        }
      }
    }
    return weight;
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
