/**
 * A model larger than the GPU may hold: refused with a ModelTooLargeError that names what it needs
 * (weights, activations) and what is allowed, before anything is uploaded, and the f16 remedy
 * where it helps; the driver's own out-of-memory answer turned into the same error; nothing left
 * allocated either way.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../src/gpu/device.ts';
import { formatBytes, heldMemory, ModelTooLargeError, parseByteSize } from '../src/gpu/memory_budget.ts';
import { CompiledGraph, GraphLimitError } from '../src/graph/executor.ts';
import { byteSize, type Graph, type Tensor } from '../src/graph/graph.ts';
import { readUNet } from '../src/models/unet_2d_model.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import { WeightStore } from '../src/models/weights.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { StableDiffusionPipeline } from '../src/text_to_image_pipeline.ts';
import { tinyModelFiles } from './util/tiny_model.ts';
import { gpu } from './util/shared_gpu.ts';

const test = suite('GPU memory budget');

/** The same device under a budget. */
const budgeted = (base: Gpu, maxMemoryBytes: number): Gpu => ({ ...base, maxMemoryBytes });

/** What loading the tiny model at batch 2 adds to the device's count, loaded then freed. */
async function measuredNeed(base: Gpu, precision: 'f32' | 'f16'): Promise<number> {
  const before = heldMemory(base.device).bytes;
  const pipeline = await DdimPipeline.load(base, tinyModelFiles(), { batch: 2, precision });
  const loaded = heldMemory(base.device).bytes - before;
  pipeline.destroy();
  assert.is(heldMemory(base.device).bytes, before, 'destroy gives back every byte counted');
  return loaded;
}

async function refusal(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    assert.instance(error, ModelTooLargeError);
    return (error as Error).message;
  }
  throw new Error('expected a ModelTooLargeError');
}

test('the count: a pipeline holds its weights and buffers while loaded, nothing once destroyed', async () => {
  const base = await gpu();
  const before = heldMemory(base.device).bytes;
  const pipeline = await DdimPipeline.load(base, tinyModelFiles(), { batch: 2 });
  const held = heldMemory(base.device).bytes - before;
  const { weightBytes, activationBytes } = pipeline.unet.compiled.memory;
  console.log(`    tiny model, batch 2: ${held} bytes held (UNet weights ${weightBytes}, its buffers ${activationBytes})`);
  assert.ok(held >= weightBytes + activationBytes, `${held} counted, the UNet alone holds ${weightBytes + activationBytes}`);
  assert.ok(heldMemory(base.device).f32WeightBytes >= weightBytes, 'f32 weights counted as such');
  pipeline.destroy();
  assert.is(heldMemory(base.device).bytes, before);
});

test('a budget below the need: refused before any upload, with the numbers and the f16 remedy', async () => {
  const base = await gpu();
  const need = await measuredNeed(base, 'f32');
  const before = heldMemory(base.device).bytes;
  const message = await refusal(() => DdimPipeline.load(budgeted(base, need - 1024), tinyModelFiles(), { batch: 2 }));
  console.log(`    refused: ${message}`);
  assert.match(message, /^unet needs [\d.]+ (KiB|MiB|GiB) of GPU memory \(weights [\d.]+ (KiB|MiB), activations [\d.]+ (KiB|MiB)\)/);
  assert.ok(message.includes(`the GPU memory budget for ${base.adapterName} (--gpu-memory) allows ${formatBytes(need - 1024)}`), message);
  // f16 halves the weights on any adapter: as f16-packed where shader-f16 is missing.
  assert.ok(message.includes("precision 'f16' (--precision f16)"), 'the f16 remedy is offered');
  assert.is(message.includes('run as f16-packed'), !base.device.features.has('shader-f16'));
  assert.is(heldMemory(base.device).bytes, before, 'nothing was allocated');
  // What was measured is enough: each graph's check counts only what it will allocate.
  const pipeline = await DdimPipeline.load(budgeted(base, need), tinyModelFiles(), { batch: 2 });
  pipeline.destroy();
});

test('text-to-image: a budget the VAE would break is refused at load, before any step, not when the images are decoded', async () => {
  const base = await gpu();
  const files = await loadModelDir('../shared/golden/sd/tiny-sd');
  const before = heldMemory(base.device).bytes;
  const pipeline = await StableDiffusionPipeline.load(base, files);
  const [, h, w] = pipeline.imageShape;
  const unet = heldMemory(base.device).bytes - before;
  const f = pipeline.autoencoder.downscaleFactor;
  const vae = pipeline.autoencoder.decoderMemoryNeed(1, h / f, w / f);
  pipeline.destroy();
  const vaeBytes = vae.weightBytes + vae.activationBytes;
  console.log(`    tiny SD at load: the guided UNet holds ${formatBytes(unet)}; the VAE decoder will need ${formatBytes(vaeBytes)}`);
  assert.ok(vae.weightBytes > 0 && vae.activationBytes > 0);
  const message = await refusal(() => StableDiffusionPipeline.load(budgeted(base, unet + vaeBytes - 1024), files));
  console.log(`    refused: ${message}`);
  assert.match(message, /^vae\.decoder needs [\d.]+ (KiB|MiB) of GPU memory .* beside [\d.]+ (KiB|MiB) the engine already holds/);
  assert.is(heldMemory(base.device).bytes, before, 'the UNet compiled before the check was released');
  // Enough for both: the load goes through, and the decode compiles within the budget.
  const fits = await StableDiffusionPipeline.load(budgeted(base, unet + vaeBytes), files);
  try {
    const { images } = await fits.decodeLatents(new Float32Array(pipeline.latentShape.reduce((a, b) => a * b)));
    assert.ok(images.every(Number.isFinite));
  } finally {
    fits.destroy();
  }
  assert.is(heldMemory(base.device).bytes, before);
});

test('at precision f16 the weights take half and no remedy is offered', async () => {
  const base = await gpu();
  if (!base.device.features.has('shader-f16')) {
    console.log(`    ${base.adapterName} has no shader-f16: only the f32 case applies`);
    return;
  }
  const need = await measuredNeed(base, 'f16');
  const message = await refusal(() => DdimPipeline.load(budgeted(base, need - 1024), tinyModelFiles(), { batch: 2, precision: 'f16' }));
  console.log(`    refused: ${message}`);
  assert.not.match(message, /--precision f16/);
});

test('the device out of memory: the same error with the driver message, nothing left allocated', async () => {
  const base = await gpu();
  const model = readUNet(tinyModelFiles());
  const graph = buildUNetGraph(model.config, new WeightStore(model.file), { batch: 2 });
  const device = base.device;
  const create = device.createBuffer;
  const before = heldMemory(device).bytes;
  let mapped = 0;
  // Dawn throws a RangeError for a buffer mapped at creation it cannot allocate: the third weight fails.
  device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    if (descriptor.mappedAtCreation && ++mapped === 3) throw new RangeError('Out of memory');
    return create.call(device, descriptor);
  };
  try {
    const message = await refusal(() => CompiledGraph.compile(base, graph, { label: 'unet' }));
    console.log(`    refused: ${message}`);
    assert.match(
      message,
      new RegExp(
        `^unet needs .* of GPU memory \\(weights .*, activations .*\\); .* ran out of memory allocating it \\(weight '[^']+' \\(\\d+ bytes\\): Out of memory\\)`,
      ),
    );
    assert.ok(message.includes(base.adapterName), message);
  } finally {
    device.createBuffer = create;
  }
  assert.is(heldMemory(device).bytes, before, 'the weights uploaded before the failure were freed');
});

test('a weight over maxBufferSize is refused by name though no node binds it as storage', () => {
  // The register convs can bind a weight only in 64 KiB uniform windows, which the binding check
  // skips; the buffer behind it is still one buffer.
  const weight = { id: 0, name: 'conv.weight', shape: [64, 64, 3, 3], dtype: 'f32', role: 'weight' } as unknown as Tensor;
  const graph = { nodes: [], tensors: [weight] } as unknown as Graph;
  const maxBufferSize = byteSize(weight) - 4;
  try {
    CompiledGraph.checkLimits(graph, { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize, maxComputeWorkgroupsPerDimension: 65535 });
    assert.unreachable('refused');
  } catch (error) {
    assert.instance(error, GraphLimitError);
    const message = (error as Error).message;
    console.log(`    refused: ${message}`);
    assert.is(message, `tensor 'conv.weight' [64,64,3,3] needs 147456 bytes, more than this adapter's buffer size limit of 147452 bytes`);
  }
});

test('sizes as users write them', () => {
  assert.is(parseByteSize('6G'), 6 * 2 ** 30);
  assert.is(parseByteSize('512MiB'), 512 * 2 ** 20);
  assert.is(parseByteSize('1.5 GB'), 1.5 * 2 ** 30);
  assert.is(parseByteSize('4096'), 4096);
  assert.is(parseByteSize('2k'), 2048);
  for (const bad of ['', 'lots', '-1G', '0', '6 X', '1e9']) assert.is(parseByteSize(bad), undefined, bad);
});

test.run();
