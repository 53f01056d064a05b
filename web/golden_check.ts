/**
 * The browser test's numerical check (web/test.html): one UNet forward of the default model on
 * the golden input, compared with diffusers' float64 output. The result is written as JSON into
 * #result, with data-done set, for test/browser/run.mjs to read.
 */
import { DdimPipeline, loadModel, parseSafetensors, requestGpu, toFloat32, toInt32, UnsupportedPrecisionError } from '../src/index.ts';
import { compare } from '../test/util/compare_values.ts';

const TOLERANCE = 2e-4;
/** precision 'f16' (issue 11's bound for eps). */
const F16_TOLERANCE = 3e-3;

interface GoldenResult {
  ok: boolean;
  adapter?: string;
  relL2?: number;
  maxAbs?: number;
  worstIndex?: number;
  tolerance: number;
  /** Wall time of the load, compile and forward, in milliseconds. */
  loadMs?: number;
  forwardMs?: number;
  /** The same forward at precision 'f16' where the adapter has shader-f16; else its refusal. */
  f16?: { relL2: number; maxAbs: number; tolerance: number; forwardMs: number } | { refused: string };
  error?: string;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${response.url} failed: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function run(): Promise<GoldenResult> {
  const gpu = await requestGpu();
  const golden = parseSafetensors(await fetchBytes('golden/emoji32_unet.safetensors'));
  const tensor = (name: string) => {
    const entry = golden.tensors.get(name);
    if (!entry) throw new Error(`golden tensor ${name} is missing`);
    return entry;
  };
  const x = toFloat32(tensor('input.x'));
  const t = toInt32(tensor('input.t'));
  const expected = toFloat32(tensor('output.eps'));

  const loadStart = performance.now();
  const files = await loadModel('weights/emoji32/');
  const pipeline = await DdimPipeline.load(gpu, files, { batch: t.length });
  const forwardStart = performance.now();
  const eps = await pipeline.eps(x, t);
  const forwardMs = performance.now() - forwardStart;
  pipeline.destroy();

  let f16: GoldenResult['f16'];
  try {
    const half = await DdimPipeline.load(gpu, files, { batch: t.length, precision: 'f16' });
    const start = performance.now();
    const halfEps = await half.eps(x, t);
    const ms = performance.now() - start;
    half.destroy();
    const c = compare(halfEps, expected);
    f16 = { relL2: c.relL2, maxAbs: c.maxAbs, tolerance: F16_TOLERANCE, forwardMs: ms };
  } catch (e) {
    if (!(e instanceof UnsupportedPrecisionError) || gpu.device.features.has('shader-f16')) throw e;
    f16 = { refused: e.message };
  }
  if (gpu.uncapturedErrors.length > 0) throw new Error(`WebGPU errors: ${gpu.uncapturedErrors.join('; ')}`);

  const { relL2, maxAbs, worstIndex } = compare(eps, expected);
  const f16Ok = !f16 || 'refused' in f16 || f16.relL2 <= F16_TOLERANCE;
  return {
    f16,
    ok: relL2 <= TOLERANCE && f16Ok,
    adapter: gpu.adapterName,
    relL2,
    maxAbs,
    worstIndex,
    tolerance: TOLERANCE,
    loadMs: forwardStart - loadStart,
    forwardMs,
  };
}

const out = document.getElementById('result')!;
let result: GoldenResult;
try {
  result = await run();
} catch (e) {
  result = { ok: false, tolerance: TOLERANCE, error: `${(e as Error).name}: ${(e as Error).message}` };
}
out.textContent = JSON.stringify(result, null, 2);
out.dataset.done = result.ok ? 'ok' : 'failed';
