/**
 * Stable Diffusion 1.5 at full size within WebGPU's default limits: its published component configs
 * (../shared/golden/sd/configs/sd15) with random weights made in memory (nothing downloaded), the whole
 * text-to-image pipeline (text encoder, guided UNet, VAE) at a small image so that it runs here. It
 * measures what full size means for a page: the host memory of loading (the weights stream to the
 * GPU tensor by tensor, never all expanded to f32), the GPU bytes of each component and at the peak,
 * and the largest binding, against the 128 MiB every WebGPU adapter allows.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import process from 'node:process';
import { readStableDiffusionConfigs, readTokenizerDir } from '../src/fs/config_dir.ts';
import { requestGpu } from '../src/gpu/device.ts';
import type { GpuMemory } from '../src/graph/executor.ts';
import type { Precision } from '../src/gpu/shader_source.ts';
import { randomStableDiffusionFiles } from '../src/models/random_pipeline.ts';
import { requiredConditionalUNetWeights } from '../src/models/random_weights.ts';
import { StableDiffusionPipeline } from '../src/text_to_image_pipeline.ts';

const MiB = 2 ** 20;
/** WebGPU's guaranteed limits: what any adapter, a phone's included, offers a page. */
const DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 256 * MiB };
/** 64x64 pixels: 8x8 latents, the smallest SD's UNet takes (three halvings). */
const SIZE = 64;
const STEPS = 1;
/** DDIM_SD15_F32=1 also runs it with the UNet and text encoder in f32 (3.8 GB of weights on the GPU; about twice the time). */
const PRECISIONS: Precision[] = process.env.DDIM_SD15_F32 === '1' ? ['f16', 'f32'] : ['f16'];

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** The process's memory after a garbage collection where the runtime offers one (Node; Deno runs none on request). */
async function settledMemory(): Promise<{ rss: number; heapUsed: number; external: number }> {
  if (!g.Deno) {
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    gc();
    // Array buffers are swept after the collection, off the main thread.
    await new Promise((resolve) => setTimeout(resolve, 500));
    gc();
  }
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

/**
 * Follows the device's buffers (createBuffer and destroy wrapped): the bytes alive and their peak,
 * and the host's array memory (`external`) at every upload, where a weight's f32 values are alive.
 */
function trackMemory(device: GPUDevice) {
  const state = { liveBytes: 0, peakBytes: 0, peakExternal: 0, peakRss: 0 };
  const create = device.createBuffer.bind(device);
  device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    const buffer = create(descriptor);
    state.liveBytes += buffer.size;
    state.peakBytes = Math.max(state.peakBytes, state.liveBytes);
    const destroy = buffer.destroy.bind(buffer);
    let destroyed = false;
    buffer.destroy = () => {
      if (!destroyed) state.liveBytes -= buffer.size;
      destroyed = true;
      destroy();
    };
    if (descriptor.mappedAtCreation) {
      const unmap = buffer.unmap.bind(buffer);
      buffer.unmap = () => {
        const { external, rss } = process.memoryUsage();
        state.peakExternal = Math.max(state.peakExternal, external);
        state.peakRss = Math.max(state.peakRss, rss);
        unmap();
      };
    }
    return buffer;
  };
  return state;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const describe = (m: GpuMemory) =>
  `weights ${mib(m.weightBytes)}, buffers ${mib(m.activationBytes)}, largest binding ${mib(m.largestBindingBytes)}`;

const test = suite('sd15 full size');

for (const precision of PRECISIONS) {
  test(`SD 1.5 (random weights, ${precision}) at ${SIZE}x${SIZE}: DDIM-${STEPS} under guidance within WebGPU's default limits`, async () => {
    await fullSizeRun(precision);
  });
}

async function fullSizeRun(precision: Precision) {
  const configs = readStableDiffusionConfigs('../shared/golden/sd/configs/sd15');
  const tokenizer = readTokenizerDir('../shared/golden/sd/tiny-sd/tokenizer');
  let start = performance.now();
  const files = randomStableDiffusionFiles(configs, { tokenizer, dtype: 'F16', seed: 1 });
  const unetParameters = requiredConditionalUNetWeights(configs.unet).reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  const fileBytes = files.weights.byteLength + files.textEncoder!.weights.byteLength + files.autoencoder!.weights.byteLength;
  console.log(
    `    random F16 files: unet ${mib(files.weights.byteLength)}, text encoder ${mib(files.textEncoder!.weights.byteLength)}, ` +
      `vae ${mib(files.autoencoder!.weights.byteLength)} in ${((performance.now() - start) / 1000).toFixed(1)} s`,
  );

  const gpu = await requestGpu({ backend: 'dawn' });
  if (precision === 'f16') assert.ok(gpu.device.features.has('shader-f16'), `${gpu.adapterName} has no shader-f16`);
  console.log(`    adapter: ${gpu.adapterName}`);
  const tracked = trackMemory(gpu.device);

  // Loading: every component's weights checked on the CPU, the guided UNet compiled and uploaded.
  const before = await settledMemory();
  start = performance.now();
  const pipeline = await StableDiffusionPipeline.load(gpu, files, {
    height: SIZE,
    width: SIZE,
    precision,
    limits: DEFAULT_LIMITS,
    releaseTextEncoder: true,
  });
  const loadSeconds = (performance.now() - start) / 1000;
  const after = await settledMemory();
  const peakGrowth = tracked.peakExternal - before.external;
  const f32Unet = 4 * unetParameters;
  console.log(
    `    host memory, loading SD 1.5's UNet at ${precision} (${loadSeconds.toFixed(1)} s; the files, ${mib(fileBytes)}, made before): ` +
      `rss ${mib(before.rss)} -> ${mib(after.rss)} (peak ${mib(tracked.peakRss)}; lavapipe's GPU memory is host memory), ` +
      `heap ${mib(before.heapUsed)} -> ${mib(after.heapUsed)}, array buffers ${mib(before.external)} -> ${mib(after.external)} ` +
      `(peak ${mib(tracked.peakExternal)}: +${mib(peakGrowth)} at most over the files; the UNet in f32 would be +${mib(f32Unet)})`,
  );
  // Streaming: at most a few tensors' f32 values at once, never the model's (3.4 GB). Node measures
  // ~300 MiB here; Deno's collector lets freed arrays linger (up to ~850 MiB seen), hence half the model.
  assert.ok(peakGrowth < f32Unet / 2, `loading held ${mib(peakGrowth)} of host arrays beyond the files`);
  // What stays after loading: a few tensors' worth, not the model (Deno's collector lets ~100 MiB linger).
  assert.ok(after.external - before.external < 256 * MiB, `loading kept ${mib(after.external - before.external)} of host arrays`);

  const prompt = 'a photograph of an astronaut riding a horse';
  start = performance.now();
  const result = await pipeline.sample({ prompt, negativePrompt: '', guidance: 7.5, steps: STEPS, seed: 0 });
  const sampleSeconds = (performance.now() - start) / 1000;
  assert.equal(result.imageShape, [3, SIZE, SIZE]);
  assert.is(result.images.length, 3 * SIZE * SIZE);
  assert.ok(result.images.every(Number.isFinite));
  const memory = pipeline.memory();
  console.log(
    `    sample (the text encoder compiled, 2 prompts encoded, ${STEPS} guided step at batch 2, the VAE compiled and run): ` +
      `${sampleSeconds.toFixed(1)} s`,
  );
  console.log(`    text encoder (${precision}): ${describe(memory.textEncoder)}; released after encoding`);
  console.log(`    unet (${precision}, batch 2): ${describe(memory.unet)}`);
  console.log(`    vae (${pipeline.autoencoder.precision}, force_upcast): ${describe(memory.vae)}`);
  console.log(
    `    GPU peak ${mib(memory.peakBytes)} by the components' count, ${mib(tracked.peakBytes)} of buffers alive at once measured ` +
      `(the sampler's, guidance's and readback buffers besides); largest binding ${mib(memory.largestBindingBytes)} ` +
      `(limit ${mib(DEFAULT_LIMITS.maxStorageBufferBindingSize)})`,
  );

  const total = (m: GpuMemory) => m.weightBytes + m.activationBytes;
  assert.is(memory.totalBytes, total(memory.unet) + total(memory.vae), 'the text encoder was released');
  assert.ok(memory.largestBindingBytes <= DEFAULT_LIMITS.maxStorageBufferBindingSize);
  // Two or four bytes per parameter, and some padding (uniform windows, padded channels).
  const bytesPerParameter = precision === 'f16' ? 2 : 4;
  assert.ok(
    memory.unet.weightBytes >= bytesPerParameter * unetParameters && memory.unet.weightBytes < 1.1 * bytesPerParameter * unetParameters,
    `unet weights ${mib(memory.unet.weightBytes)} for ${unetParameters} parameters`,
  );
  const allAtOnce = total(memory.textEncoder) + total(memory.unet) + total(memory.vae);
  assert.ok(memory.textEncoder.weightBytes > 0 && memory.peakBytes < allAtOnce, 'the text encoder was never held beside the VAE');
  // The count leaves out only the sampler's few latent-sized buffers and the readbacks.
  console.log(`    uncounted at the peak: ${((tracked.peakBytes - memory.peakBytes) / 1024).toFixed(1)} KiB`);
  assert.ok(tracked.peakBytes >= memory.peakBytes, `measured ${mib(tracked.peakBytes)} < counted ${mib(memory.peakBytes)}`);
  assert.ok(tracked.peakBytes - memory.peakBytes < 8 * MiB, `${mib(tracked.peakBytes - memory.peakBytes)} uncounted`);
  pipeline.destroy();
}

test.run();
