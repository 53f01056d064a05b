/** What several suites share: one device per file (its adapter printed once), and a refusal check. */
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../../src/gpu/device.ts';

let gpuPromise: Promise<Gpu> | undefined;

/** One device for the whole file, its adapter and shader-f16 printed when it is first asked for. */
export function gpu(): Promise<Gpu> {
  gpuPromise ??= requestGpu().then((g) => {
    console.log(`    adapter: ${g.adapterName}, shader-f16: ${g.device.features.has('shader-f16')}`);
    return g;
  });
  return gpuPromise;
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
