/**
 * A pipeline called as pages and servers call it: overlapping calls give what they give one after
 * another, an aborted call leaves the pipeline usable, a step creates nothing on the GPU, a batch
 * the adapter cannot hold is split rather than refused, and loading compiles every GPU program
 * once, before the first step.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { byteSize } from '../src/graph/graph.ts';
import { GraphLimitError } from '../src/graph/executor.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import { WeightStore } from '../src/models/weights.ts';
import { type CompileProgress, countPrograms } from '../src/gpu/kernel.ts';
import { DdimPipeline, readModel } from '../src/pipeline.ts';
import { DdimSampler } from '../src/sampler/ddim.ts';
import { Profiler } from '../src/profile/profiler.ts';
import { tinyModelFiles } from './util/tiny_model.ts';

const calls = suite('pipeline calls');
let gpu: Gpu;
let pipeline: DdimPipeline;

calls.before(async () => {
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}`);
  pipeline = await DdimPipeline.load(gpu, tinyModelFiles(), { batch: 2 });
});

calls.after(() => pipeline.destroy());

function identical(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

calls('overlapping calls give bit for bit what sequential calls give', async () => {
  const [c, h, w] = pipeline.imageShape;
  const x = Float32Array.from({ length: 3 * c * h * w }, (_, i) => Math.sin(i * 0.37));
  const t = new Int32Array([10, 500, 990]);
  // One after another.
  const first = await pipeline.sample({ steps: 6, count: 3, seed: 1, eta: 1 });
  const second = await pipeline.sample({ steps: 6, count: 3, seed: 2, eta: 0 });
  const eps = await pipeline.eps(x, t);
  // Started together: two samples with different seeds and an eps in between.
  const together = await Promise.all([
    pipeline.sample({ steps: 6, count: 3, seed: 1, eta: 1 }),
    pipeline.eps(x, t),
    pipeline.sample({ steps: 6, count: 3, seed: 2, eta: 0 }),
    pipeline.latents(7, 2),
  ]);
  console.log(
    `    overlapping vs sequential: sample 1 max |diff| ${maxDiff(together[0].x0, first.x0)}, ` +
      `sample 2 ${maxDiff(together[2].x0, second.x0)}, eps ${maxDiff(together[1], eps)}`,
  );
  assert.ok(identical(together[0].x0, first.x0), 'the first sample changed when another call overlapped it');
  assert.ok(identical(together[2].x0, second.x0), 'the second sample changed when another call overlapped it');
  assert.ok(identical(together[1], eps), 'eps during a sample gave another prediction');
  assert.ok(identical(together[3], await pipeline.latents(7, 2)), 'latents during a sample changed');
  assert.ok(!identical(first.x0, second.x0), 'two seeds give two samples');
});

calls('an aborted sample stops between steps with an AbortError and the pipeline samples correctly again', async () => {
  const reference = await pipeline.sample({ steps: 8, count: 2, seed: 3, eta: 1 });
  const controller = new AbortController();
  let stepsSeen = 0;
  const aborted = pipeline.sample({
    steps: 50,
    count: 4,
    seed: 9,
    eta: 1,
    signal: controller.signal,
    onStep: ({ step }) => {
      stepsSeen = Math.max(stepsSeen, step);
      if (step === 3) controller.abort();
    },
    previewX0: true,
  });
  // A call made meanwhile waits for the aborted one and is not disturbed by it.
  const queued = pipeline.sample({ steps: 8, count: 2, seed: 3, eta: 1 });
  const outcome = await aborted.then(() => 'finished', (e: Error) => e.name);
  console.log(`    aborted call: ${outcome} after step ${stepsSeen} of 50`);
  assert.is(outcome, 'AbortError');
  assert.ok(stepsSeen < 50, 'the call stopped early');
  assert.ok(identical((await queued).x0, reference.x0), 'the call queued behind the aborted one is correct');
  assert.ok(
    identical((await pipeline.sample({ steps: 8, count: 2, seed: 3, eta: 1 })).x0, reference.x0),
    'sampling after an abort is correct',
  );
  // A signal aborted before the call starts stops it before any step.
  const early = new AbortController();
  early.abort();
  const before = await pipeline.sample({ steps: 8, signal: early.signal }).then(() => 'finished', (e: Error) => e.name);
  assert.is(before, 'AbortError');
});

/** Counts what the device is asked to create while `work` runs. */
async function countCreations(work: () => Promise<unknown>): Promise<Record<string, number>> {
  const device = gpu.device as unknown as Record<string, unknown>;
  const methods = [
    'createBuffer',
    'createBindGroup',
    'createBindGroupLayout',
    'createComputePipeline',
    'createComputePipelineAsync',
    'createShaderModule',
    'createQuerySet',
  ];
  const counts: Record<string, number> = Object.fromEntries(methods.map((m) => [m, 0]));
  const originals = methods.map((m) => [m, Object.prototype.hasOwnProperty.call(device, m), device[m]] as const);
  for (const m of methods) {
    const original = (device[m] as (...args: unknown[]) => unknown).bind(gpu.device);
    device[m] = (...args: unknown[]) => {
      counts[m]++;
      return original(...args);
    };
  }
  try {
    await work();
  } finally {
    for (const [m, own, value] of originals) {
      if (own) device[m] = value;
      else delete device[m];
    }
  }
  return counts;
}

calls('a DDIM step creates no buffer, bind group, pipeline or query set (with previews, trajectories, the profiler, or none)', async () => {
  const profiler = new Profiler(gpu, pipeline.unet.compiled);
  try {
    const modes = {
      plain: {},
      previews: { previewX0: true, onStep: () => {} },
      trajectory: { trajectory: true },
      profiler: { observers: [profiler] },
    };
    for (const [mode, extra] of Object.entries(modes)) {
      const perSteps: Record<string, number>[] = [];
      for (const steps of [3, 9]) {
        // The first call makes the plan for these steps; the counted one reuses it.
        await pipeline.sample({ steps, count: 3, seed: 1, eta: 1, ...extra });
        perSteps.push(await countCreations(() => pipeline.sample({ steps, count: 3, seed: 1, eta: 1, ...extra })));
      }
      const made = (c: Record<string, number>) => Object.entries(c).filter(([, n]) => n > 0).map(([m, n]) => `${m} ${n}`).join(', ');
      console.log(`    ${mode}: 3 steps: ${made(perSteps[0]) || 'nothing created'}; 9 steps: ${made(perSteps[1]) || 'nothing created'}`);
      assert.equal(perSteps[1], perSteps[0], `${mode}: creations grow with the number of steps`);
      for (const [method, n] of Object.entries(perSteps[1])) assert.is(n, 0, `${mode}: ${method} was called ${n} times`);
    }
    await profiler.finish();
  } finally {
    profiler.destroy();
  }
});

calls(
  'a batch over the binding limit runs as smaller batches, bit-identical to a smaller batch; one image that does not fit is refused',
  async () => {
    const model = readModel(tinyModelFiles());
    const graph = buildUNetGraph(model.unet.config, new WeightStore(model.unet.file, { check: false }), { batch: 1 });
    // Every tensor but the weights grows with the batch.
    const largestPerImage = Math.max(...graph.tensors.filter((t) => t.role !== 'weight').map(byteSize));
    const largestWeight = Math.max(...graph.tensors.filter((t) => t.role === 'weight').map(byteSize));
    // Room for the weights and for at least two images, not five.
    const limit = Math.max(largestWeight, 2 * largestPerImage);
    const fitting = Math.floor(limit / largestPerImage);
    assert.ok(fitting >= 2 && fitting < 5, `the test needs a limit between 2 and 4 images (got ${fitting})`);
    const split = await DdimPipeline.load(gpu, model, { batch: 5, limits: { maxStorageBufferBindingSize: limit } });
    const smaller = await DdimPipeline.load(gpu, model, { batch: fitting });
    try {
      console.log(`    asked for batch 5 with a binding limit of ${limit} bytes (${largestPerImage} per image): runs batch ${split.batch}`);
      assert.is(split.batch, fitting);
      assert.is(split.unet.requestedBatch, 5);
      const a = await split.sample({ steps: 4, count: 5, seed: 11, eta: 1 });
      const b = await smaller.sample({ steps: 4, count: 5, seed: 11, eta: 1 });
      assert.ok(identical(a.x0, b.x0), `the split batch differs from batch ${fitting}`);
    } finally {
      split.destroy();
      smaller.destroy();
    }
    // Below one image's largest tensor nothing can be split off: refused, with the numbers.
    const tooSmall = Math.min(largestPerImage, largestWeight) - 4;
    try {
      await DdimPipeline.load(gpu, model, { batch: 3, limits: { maxStorageBufferBindingSize: tooSmall } });
      assert.unreachable('a single image over the limit should be refused');
    } catch (error) {
      assert.instance(error, GraphLimitError);
      console.log(`    refused: ${(error as Error).message}`);
      assert.match(
        (error as Error).message,
        new RegExp(`needs \\d+ bytes, more than this adapter's storage binding limit of ${tooSmall} bytes`),
      );
    }
  },
);

calls('a model read once compiles for several batch sizes with its weights uploaded once', async () => {
  const model = readModel(tinyModelFiles(3));
  const uploads: number[] = [];
  const device = gpu.device as unknown as Record<string, unknown>;
  const create = gpu.device.createBuffer.bind(gpu.device);
  device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    // Weights are the buffers made mapped with their values (storage, and uniform for the windows).
    if (descriptor.mappedAtCreation && descriptor.usage & GPUBufferUsage.STORAGE) uploads.push(descriptor.size);
    return create(descriptor);
  };
  let one: DdimPipeline | undefined;
  let three: DdimPipeline | undefined;
  try {
    one = await DdimPipeline.load(gpu, model, { batch: 1 });
    const afterFirst = uploads.length;
    three = await one.withBatch(3);
    console.log(`    weight uploads: ${afterFirst} for batch 1, ${uploads.length - afterFirst} more for batch 3`);
    assert.ok(afterFirst > 0);
    assert.is(uploads.length, afterFirst, 'compiling another batch size uploaded weights again');
    const a = await one.sample({ steps: 3, count: 3, seed: 4 });
    const b = await three.sample({ steps: 3, count: 3, seed: 4 });
    assert.ok(maxDiff(a.x0, b.x0) < 1e-5, 'batch 1 and batch 3 of one model disagree');
    one.destroy();
    one = undefined;
    // The weights stay while batch 3 uses them.
    assert.ok(identical((await three.sample({ steps: 3, count: 3, seed: 4 })).x0, b.x0));
  } finally {
    delete device.createBuffer;
    one?.destroy();
    three?.destroy();
  }
});

/** Records, on `device`, every pipeline made (by label, async or not) and every submit, in order. */
function recordCompileCalls(device: GPUDevice): { events: string[]; restore(): void } {
  const events: string[] = [];
  const target = device as unknown as Record<string, unknown>;
  const queue = device.queue as unknown as Record<string, unknown>;
  const createAsync = device.createComputePipelineAsync.bind(device);
  const create = device.createComputePipeline.bind(device);
  const submit = device.queue.submit.bind(device.queue);
  target.createComputePipelineAsync = (descriptor: GPUComputePipelineDescriptor) => {
    events.push(`async ${descriptor.label}`);
    return createAsync(descriptor);
  };
  target.createComputePipeline = (descriptor: GPUComputePipelineDescriptor) => {
    events.push(`sync ${descriptor.label}`);
    return create(descriptor);
  };
  queue.submit = (buffers: GPUCommandBuffer[]) => {
    events.push('submit');
    return submit(buffers);
  };
  return {
    events,
    restore() {
      delete target.createComputePipelineAsync;
      delete target.createComputePipeline;
      delete queue.submit;
    },
  };
}

calls('loading compiles each distinct program once, asynchronously, all asked for at once, and runs it before the first step', async () => {
  // A device of its own: nothing compiled on it yet.
  const own = await requestGpu();
  const { events, restore } = recordCompileCalls(own.device);
  const model = readModel(tinyModelFiles(5));
  const heard: CompileProgress[] = [];
  let loaded: DdimPipeline | undefined;
  let again: DdimPipeline | undefined;
  try {
    loaded = await DdimPipeline.load(own, model, { batch: 2, onCompileProgress: (p) => void heard.push({ ...p }) });
    const graphShaders = loaded.unet.compiled.graph.nodes.map((node) => node.source);
    const samplerShaders = DdimSampler.shaders(model.schedule);
    const programs = countPrograms([...graphShaders, ...samplerShaders]);
    const made = events.filter((e) => e !== 'submit');
    const submits = events.filter((e) => e === 'submit').length;
    console.log(
      `    ${graphShaders.length} nodes, ${programs} programs (${loaded.unet.compiled.stats.programs} of the UNet's, ${samplerShaders.length} of the sampler's): ` +
        `${made.length} pipelines made (${made.join(', ')}), ${submits} submits; progress ${
          heard.map((p) => `${p.compiled}/${p.total}`).join(' ')
        }`,
    );
    assert.is(loaded.unet.compiled.stats.programs, countPrograms(graphShaders));
    assert.equal(made, [...new Set(made)], 'a program was made twice');
    assert.ok(made.every((e) => e.startsWith('async ')), `made without createComputePipelineAsync: ${made.join(', ')}`);
    assert.is(made.length, programs);
    // The UNet's pipelines were all asked for before any ran (not one after another).
    assert.ok(events.indexOf('submit') >= loaded.unet.compiled.stats.programs, events.join(', '));
    // Each program ran once during the load (its first run, where a lazy driver compiles it); nothing else was submitted.
    assert.is(submits, programs);
    assert.equal(heard[0], { compiled: 0, total: programs });
    assert.equal(heard.at(-1), { compiled: programs, total: programs });
    assert.ok(heard.every((p, i) => p.total === programs && (i === 0 || p.compiled >= heard[i - 1].compiled)), 'progress went back');

    // The first step compiles nothing more.
    events.length = 0;
    await loaded.sample({ steps: 2, count: 2, seed: 1, eta: 1 });
    assert.equal(events.filter((e) => e !== 'submit'), [], 'sampling made a pipeline');

    // Another batch size on the device: the same programs, neither made nor run again; progress still reaches n of n.
    events.length = 0;
    heard.length = 0;
    again = await loaded.withBatch(3, { onCompileProgress: (p) => void heard.push({ ...p }) });
    assert.equal(events, [], `compiling batch 3 made or ran: ${events.join(', ')}`);
    assert.equal(heard.at(-1), { compiled: programs, total: programs });
  } finally {
    restore();
    again?.destroy();
    loaded?.destroy();
    own.device.destroy();
  }
});

calls.run();
