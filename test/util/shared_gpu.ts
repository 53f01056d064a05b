/** What several suites share: one device per file (its adapter printed once), a graph run once, a refusal check, float64 references. */
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../../src/gpu/device.ts';
import type { Precision } from '../../src/gpu/shader_source.ts';
import { CompiledGraph } from '../../src/graph/executor.ts';
import { Graph, type Tensor } from '../../src/graph/graph.ts';
import { fromActivations, toActivations } from '../../src/ops/cast.ts';

let gpuPromise: Promise<Gpu> | undefined;

/**
 * One device for the whole run (the test runner puts every file in one process): no suite destroys
 * it; one that is lost anyway is replaced at the next call. Its adapter and shader-f16 are printed
 * when it is made.
 */
export function gpu(): Promise<Gpu> {
  gpuPromise ??= requestGpu().then((g) => {
    console.log(`    adapter: ${g.adapterName}, shader-f16: ${g.device.features.has('shader-f16')}`);
    g.lost.then(() => (gpuPromise = undefined));
    return g;
  });
  return gpuPromise;
}

/**
 * The graph `build` makes of `inputs`, compiled on the file's device, run once: its output as f32.
 * At another precision than f32 the inputs are converted to the graph's activations on the way in,
 * and the output back.
 */
export async function runGraph(
  inputs: Record<string, { shape: number[]; data: Float32Array }>,
  build: (g: Graph, t: Record<string, Tensor>) => Tensor,
  options: { precision?: Precision; label?: string } = {},
): Promise<Float32Array> {
  const g = new Graph(options.precision);
  const tensors: Record<string, Tensor> = {};
  for (const [name, { shape }] of Object.entries(inputs)) tensors[name] = toActivations(g, `${name}.act`, g.input(name, shape));
  const out = g.markOutput(fromActivations(g, 'out.f32', build(g, tensors)));
  const compiled = await CompiledGraph.compile(await gpu(), g, { label: options.label ?? 'test-graph' });
  try {
    for (const [name, { data }] of Object.entries(inputs)) compiled.write(name, data);
    await compiled.run();
    return await compiled.read(out.name);
  } finally {
    compiled.destroy();
  }
}

// deno-lint-ignore no-explicit-any
export type ErrorClass = new (...args: any[]) => Error;

/** Asserts that `run` throws (or rejects with) an error of `type` whose message contains `text`. */
export async function refused(run: () => unknown, type: ErrorClass, text: string): Promise<void> {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected a ${type.name} naming '${text}', nothing was thrown`);
  assert.instance(error, type);
  const message = (error as Error).message;
  assert.ok(message.includes(text), `'${message.split('\n').slice(0, 3).join(' | ')}' should name '${text}'`);
}

/** erf in float64: its series below 3, the continued fraction of erfc above (both to ~1e-13). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...)))).
  let t = a;
  for (let k = 80; k >= 1; k--) t = a + k / 2 / t;
  return Math.sign(x) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / t);
}

type Vector = ArrayLike<number>;

/** softmax(q k^T / sqrt(d)) v per image and head in float64 (with `causal`, each query sees the keys up to its own); q [b, lq, c], k and v [b, lk, c]. */
export function attention64(
  q: Vector,
  k: Vector,
  v: Vector,
  batch: number,
  lq: number,
  lk: number,
  c: number,
  heads: number,
  causal = false,
) {
  const d = c / heads;
  const out = new Float64Array(batch * lq * c);
  const scores = new Float64Array(lk);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const keys = causal ? i + 1 : lk;
        let peak = -Infinity;
        for (let j = 0; j < keys; j++) {
          let s = 0;
          for (let e = 0; e < d; e++) s += q[(b * lq + i) * c + h * d + e] * k[(b * lk + j) * c + h * d + e];
          scores[j] = s / Math.sqrt(d);
          peak = Math.max(peak, scores[j]);
        }
        let total = 0;
        for (let j = 0; j < keys; j++) total += scores[j] = Math.exp(scores[j] - peak);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < keys; j++) acc += scores[j] * v[(b * lk + j) * c + h * d + e];
          out[(b * lq + i) * c + h * d + e] = acc / total;
        }
      }
    }
  }
  return out;
}
