/**
 * precision 'f16' (issue 11): where the adapter has shader-f16, every f16 variant compiles and a
 * DDIM sample through the public pipeline stays close to the float64 reference; without it, 'f16'
 * runs as 'f16-packed' (f16_packed.test.ts). (The UNet's f16 goldens, per kernel family, are in
 * unet_golden.test.ts.)
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { Kernel, missingFeatures } from '../src/gpu/kernel.ts';
import { shaderFor } from '../src/gpu/shader_source.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { UNet, UnsupportedFeatureError, UnsupportedPrecisionError } from '../src/models/unet_2d_model.ts';
import { DdimPipeline, readModel } from '../src/pipeline.ts';
import { SHADERS } from '../src/shaders.gen.ts';
import { byteSize } from '../src/graph/graph.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import { WeightStore } from '../src/models/weights.ts';
import { expectClose, goldenF32, readGolden } from './util/compare.ts';

/** x0 after 10 DDIM steps: eps's f16 error (4e-4) grows through the steps' divisions by sqrt(alpha). */
const F16_DDIM_TOLERANCE = 1e-2;
const IMAGE = 3 * 32 * 32;

/** Awaits `work`, which must reject with an error that `check` accepts. */
async function rejects(work: () => Promise<unknown>, check: (error: Error) => boolean, what: string): Promise<void> {
  try {
    await work();
  } catch (error) {
    assert.ok(check(error as Error), `${what}: ${(error as Error).message}`);
    return;
  }
  assert.unreachable(`${what}: accepted`);
}

const precision = suite('precision');
let gpu: Gpu;

precision.before(async () => {
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}, shader-f16: ${gpu.device.features.has('shader-f16')}`);
});

precision.after(() => gpu.device.destroy());

precision('subgroup kernels on an adapter without subgroups, and an unknown precision: refused before any GPU work', async () => {
  const model = readModel(await loadModelDir('weights/emoji32'));
  // Only the features are asked before the refusal.
  const noF16 = { ...gpu, adapterName: 'a test adapter', device: { features: new Set<string>() } as unknown as GPUDevice };
  await rejects(
    () => UNet.compile(noF16, model.unet, { batch: 1, kernels: 'tiled-wide-subgroups' }),
    (e) =>
      e instanceof UnsupportedFeatureError &&
      e.message === "kernels 'tiled-wide-subgroups' need the adapter feature 'subgroups', and a test adapter has none: use 'tiled-wide'",
    'subgroup kernels without subgroups',
  );
  await rejects(
    () => DdimPipeline.load(gpu, model, { precision: 'f64' as 'f32' }),
    (e) => e instanceof UnsupportedPrecisionError && e.message === "precision must be one of f32, f16, f16-packed, got 'f64'",
    'an unknown precision',
  );
});

precision('this adapter: f16 runs (every variant compiles, DDIM stays close to float64), or f16-packed without shader-f16', async () => {
  const model = readModel(await loadModelDir('weights/emoji32'));
  if (!gpu.device.features.has('shader-f16')) {
    const pipeline = await DdimPipeline.load(gpu, model, { precision: 'f16' });
    assert.is(pipeline.precision, 'f16-packed');
    pipeline.destroy();
    console.log('    no shader-f16 here: f16-packed');
    return;
  }
  // Those needing a feature this device lacks (subgroups on Deno's wgpu) are refused by name (ops.test.ts).
  const variants = Object.values(SHADERS).filter((s) => s.activations).map((s) => shaderFor(s, 'f16'));
  const runnable = variants.filter((shader) => missingFeatures(shader, gpu.device).length === 0);
  await Promise.all(runnable.map((shader) => Kernel.load(gpu.device, shader)));
  console.log(
    `    ${runnable.length} f16 variants compiled${
      runnable.length < variants.length ? ` (${variants.length - runnable.length} need a feature this device lacks)` : ''
    }`,
  );

  const golden = readGolden('emoji32_ddim.safetensors');
  const pipeline = await DdimPipeline.load(gpu, model, { precision: 'f16' });
  try {
    assert.is(pipeline.precision, 'f16');
    const other = await pipeline.withBatch(2);
    assert.is(other.precision, 'f16', 'withBatch keeps the precision');
    other.destroy();
    const xT = goldenF32(golden, 'xT').slice(0, IMAGE);
    const result = await pipeline.sample({ steps: 10, xT });
    const reference = goldenF32(golden, 'ddim10_eta0.xs').slice(10 * 4 * IMAGE, 10 * 4 * IMAGE + IMAGE);
    expectClose('f16 ddim10_eta0 final x0 (image 0)', result.x0, reference, F16_DDIM_TOLERANCE);
  } finally {
    pipeline.destroy();
  }
});

precision('f16 halves what a batch needs: under the same binding limit, twice the images per forward', async () => {
  if (!gpu.device.features.has('shader-f16')) {
    console.log('    no shader-f16 here: nothing to compare');
    return;
  }
  const model = readModel(await loadModelDir('weights/emoji32'));
  const largest = (precision: 'f32' | 'f16') => {
    const graph = buildUNetGraph(model.unet.config, new WeightStore(model.unet.file, { check: false }), { batch: 1, precision });
    const perImage = Math.max(...graph.tensors.filter((t) => t.role !== 'weight').map(byteSize));
    return { perImage, weight: Math.max(...graph.tensors.filter((t) => t.role === 'weight').map(byteSize)) };
  };
  const f32 = largest('f32');
  const f16 = largest('f16');
  assert.is(f16.perImage * 2, f32.perImage, "an image's largest tensor is half the bytes");
  // Room for f32's largest weight and a few f32 images.
  const limit = Math.max(f32.weight, 3 * f32.perImage);
  const batches: number[] = [];
  for (const p of ['f32', 'f16'] as const) {
    const pipeline = await DdimPipeline.load(gpu, model, { batch: 64, precision: p, limits: { maxStorageBufferBindingSize: limit } });
    batches.push(pipeline.batch);
    pipeline.destroy();
  }
  console.log(`    binding limit ${limit} bytes, batch 64 asked: f32 runs batch ${batches[0]}, f16 batch ${batches[1]}`);
  assert.is(batches[0], Math.floor(limit / f32.perImage));
  assert.is(batches[1], Math.floor(limit / f16.perImage));
  assert.ok(batches[1] >= 2 * batches[0], 'f16 fits at least twice the images');
});

precision.run();
