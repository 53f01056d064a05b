/**
 * What strangers' weights, long-running pages and small GPUs must not break: clear refusals
 * for over-limit graphs, no growth over many samples, freed buffers, bit-identical reruns, and an
 * error rather than a hang when the device is lost.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { CompiledGraph, GraphLimitError } from '../src/graph/executor.ts';
import { readUNet } from '../src/models/unet_2d_model.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import { WeightStore } from '../src/models/weights.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { tinyModelFiles } from './util/tiny_model.ts';

/** Counts the GPU buffers a device has alive, by wrapping createBuffer and destroy. */
function trackBuffers(device: GPUDevice): { live(): number } {
  let live = 0;
  const create = device.createBuffer.bind(device);
  device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    const buffer = create(descriptor);
    live++;
    const destroy = buffer.destroy.bind(buffer);
    let destroyed = false;
    buffer.destroy = () => {
      if (!destroyed) live--;
      destroyed = true;
      destroy();
    };
    return buffer;
  };
  return { live: () => live };
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
async function heapUsed(): Promise<number> {
  if (g.Deno) return g.Deno.memoryUsage().heapUsed;
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  vm.runInNewContext('gc')();
  return g.process.memoryUsage().heapUsed;
}

const hardening = suite('hardening');
let gpu: Gpu;

hardening.before(async () => {
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}`);
});

/** Compiling must refuse with a GraphLimitError matching `pattern` and leave no buffer behind. */
async function expectRefusal(options: { batch: number; size?: number }, pattern: RegExp) {
  const model = readUNet(tinyModelFiles());
  const graph = buildUNetGraph(model.config, new WeightStore(model.file), options);
  const tracker = trackBuffers(gpu.device);
  const before = tracker.live();
  try {
    await CompiledGraph.compile(gpu, graph);
    assert.unreachable('compile should refuse the graph');
  } catch (error) {
    assert.instance(error, GraphLimitError);
    const message = (error as Error).message;
    console.log(`    refused: ${message}`);
    assert.match(message, pattern);
  }
  assert.is(tracker.live(), before, 'no buffer was left behind');
}

hardening('a tensor over the storage binding limit is refused with the numbers, before any allocation', async () => {
  const limits = gpu.device.limits;
  const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  // 16 channels of 8x8 f32 are 4 KiB per image: this batch cannot fit in one binding.
  await expectRefusal(
    { batch: Math.ceil(maxBinding / 4096) + 1 },
    new RegExp(`tensor '[^']+' \\[.*\\] needs \\d+ bytes.*limit of ${maxBinding} bytes`),
  );
});

hardening('a dispatch over maxComputeWorkgroupsPerDimension is refused by node name', () => {
  const model = readUNet(tinyModelFiles());
  const graph = buildUNetGraph(model.config, new WeightStore(model.file), { batch: 2 });
  // An adapter allowing one workgroup fewer per dimension than the widest dispatch needs, with
  // this device's binding limits.
  const allowed = Math.max(...graph.nodes.flatMap((n) => n.workgroups)) - 1;
  assert.ok(allowed >= 1);
  const limits = {
    maxStorageBufferBindingSize: gpu.device.limits.maxStorageBufferBindingSize,
    maxBufferSize: gpu.device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: allowed,
  };
  try {
    CompiledGraph.checkLimits(graph, limits);
    assert.unreachable('the graph should be refused');
  } catch (error) {
    assert.instance(error, GraphLimitError);
    const message = (error as Error).message;
    console.log(`    refused: ${message}`);
    const node = message.split(':')[0];
    assert.ok(graph.nodes.some((n) => n.name === node && n.workgroups.some((w) => w > allowed)), `names the node: ${node}`);
    assert.match(message, new RegExp(`dispatch \\[[\\d,]+\\] exceeds this adapter's maxComputeWorkgroupsPerDimension of ${allowed};`));
  }
});

hardening('200 samples in one process: no growth of GPU buffers or JS heap; destroy frees every buffer', async () => {
  const tracker = trackBuffers(gpu.device);
  const baseline = tracker.live();
  const pipeline = await DdimPipeline.load(gpu, tinyModelFiles(), { batch: 2 });
  // The first sample at each eta makes the sampling plan later ones reuse.
  await pipeline.sample({ steps: 2, count: 2, seed: 0, eta: 0 });
  await pipeline.sample({ steps: 2, count: 2, seed: 0, eta: 1 });
  const loaded = tracker.live();
  const counts: number[] = [];
  let heapAfterWarmup = 0;
  for (let i = 0; i < 200; i++) {
    await pipeline.sample({ steps: 2, count: 2, seed: i, eta: i % 2 });
    counts.push(tracker.live());
    if (i === 19) heapAfterWarmup = await heapUsed();
  }
  const heapAtEnd = await heapUsed();
  const growthMiB = (heapAtEnd - heapAfterWarmup) / 2 ** 20;
  console.log(
    `    live GPU buffers: ${baseline} before load, ${loaded} loaded with plans, ${Math.min(...counts)}..${
      Math.max(...counts)
    } between samples; JS heap growth over samples 20..200: ${growthMiB.toFixed(2)} MiB`,
  );
  assert.ok(counts.every((c) => c === loaded), 'every sample releases what it made');
  assert.ok(growthMiB < 8, `JS heap grew by ${growthMiB.toFixed(1)} MiB`);
  pipeline.destroy();
  assert.is(tracker.live(), baseline, 'destroy() frees every buffer the model made');
});

hardening('the same seed and settings give bit-identical output; an image does not depend on its batch', async () => {
  const a = await DdimPipeline.load(gpu, tinyModelFiles(), { batch: 3 });
  const b = await DdimPipeline.load(gpu, tinyModelFiles(), { batch: 1 });
  try {
    for (const eta of [0, 1]) {
      const first = await a.sample({ steps: 5, count: 3, seed: 42, eta });
      const second = await a.sample({ steps: 5, count: 3, seed: 42, eta });
      assert.ok(first.x0.every((v, i) => Object.is(v, second.x0[i])), `eta ${eta}: reruns differ`);
      const single = await b.sample({ steps: 5, count: 3, seed: 42, eta });
      let worst = 0;
      for (let i = 0; i < single.x0.length; i++) worst = Math.max(worst, Math.abs(single.x0[i] - first.x0[i]));
      console.log(`    eta ${eta}: reruns bit-identical; batch 3 vs batch 1 max |diff| ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-5);
      const other = await a.sample({ steps: 5, count: 3, seed: 43, eta });
      assert.ok(other.x0.some((v, i) => v !== first.x0[i]), 'another seed gives other images');
    }
  } finally {
    a.destroy();
    b.destroy();
  }
});

hardening('a lost device ends a wait with an error instead of a hang', async () => {
  const own = await requestGpu();
  const pipeline = await DdimPipeline.load(own, tinyModelFiles(), { batch: 1 });
  const running = pipeline.sample({ steps: 50, count: 4, seed: 1 });
  own.device.destroy();
  const outcome = await Promise.race([
    running.then(() => 'finished', (e: Error) => `error: ${e.name}: ${e.message}`),
    new Promise<string>((resolve) => setTimeout(() => resolve('hang'), 20_000)),
  ]);
  console.log(`    after destroy(): ${outcome}`);
  assert.ok(outcome.startsWith('error'), `sampling on a destroyed device should fail, got: ${outcome}`);
});

hardening.run();
