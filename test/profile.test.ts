import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main as cli } from '../src/cli/main.ts';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { countGpuCalls } from '../src/profile/counters.ts';
import { measureMatmul } from '../src/profile/matmul.ts';
import { chromeTrace, formatProfile, profileForward, Profiler } from '../src/profile/profiler.ts';
import { DdimSampler } from '../src/sampler/ddim.ts';
import { scheduleFromConfig } from '../src/sampler/schedule.ts';
import { tinyModelFiles, writeTinyModel } from './util/tiny_model.ts';

let gpu: Gpu;

const profile = suite('profile');

profile.before(async () => {
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}; timestamp-query ${gpu.hasTimestamps ? 'yes' : 'no'}`);
});

profile('emoji32: per-node times add up to the step time; the trace names every node', async () => {
  const dir = 'weights/emoji32';
  const model = readUNet({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
  });
  // Batch 4: enough work per node that a runtime's fixed cost between timed passes (Deno's wgpu
  // leaves ~0.15 ms on lavapipe, a fifth of a batch-1 forward once its convs got fast) stays a
  // small part of the step.
  const batch = 4;
  const unet = await UNet.compile(gpu, model, { batch });
  try {
    unet.compiled.write('timesteps', new Int32Array(batch).fill(500));
    const p = await profileForward(unet, { steps: 1, warmup: 1 });
    const nodes = unet.compiled.nodeList;
    assert.is(p.timing, gpu.hasTimestamps ? 'timestamp-query' : 'cpu-fallback');
    assert.is(p.steps, 1);
    assert.is(p.discardedSteps, 0);
    assert.is(p.events.length, nodes.length);
    const total = p.stepTotalsMs[0];
    const sum = p.stepNodeSumsMs[0];
    console.log(
      `    step ${total.toFixed(1)} ms, per-node sum ${sum.toFixed(1)} ms (${p.timing}; timestamp quantum ${p.timestampQuantumNs} ns)`,
    );
    if (p.timing === 'timestamp-query') {
      const q = p.timestampQuantumNs!;
      assert.ok(q >= 1 && Number.isInteger(Math.log2(q)), `timestamp quantum ${q} ns is a power of two`);
    }
    assert.ok(total > 0, `step time ${total}`);
    assert.ok(Math.abs(sum - total) <= 0.2 * total, `per-node sum ${sum} ms is not within 20% of the step's ${total} ms`);

    // Per kind: every dispatch counted once, shares adding to one.
    assert.is(p.kinds.reduce((a, k) => a + k.dispatches, 0), nodes.length);
    assert.ok(Math.abs(p.kinds.reduce((a, k) => a + k.share, 0) - 1) < 1e-9);
    const conv = p.kinds.find((k) => k.kind.startsWith('conv'));
    assert.ok(conv && conv.gflops > 0, 'convolutions have a FLOP rate');
    const text = formatProfile(p);
    assert.ok(text.includes(gpu.adapterName), 'the table names the adapter');
    for (const k of p.kinds) assert.ok(text.includes(k.kind), `the table lists ${k.kind}`);

    // The trace is JSON that names every node once, in order, with sane times.
    const trace = JSON.parse(JSON.stringify(chromeTrace(p)));
    assert.is(trace.displayTimeUnit, 'ms');
    assert.is(trace.metadata.adapter, gpu.adapterName);
    const spans = trace.traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    assert.equal(spans.map((e: { name: string }) => e.name), nodes.map((n) => n.name));
    spans.forEach(
      (e: { cat: string; ts: number; dur: number; pid: number; tid: number; args: { flops: number; bytes: number } }, i: number) => {
        assert.is(e.cat, nodes[i].kind);
        assert.is(e.args.flops, nodes[i].flops);
        assert.is(e.args.bytes, nodes[i].bytes);
        assert.ok(e.ts >= 0 && e.dur >= 0 && Number.isFinite(e.ts + e.dur), `${nodes[i].name}: ts ${e.ts}, dur ${e.dur}`);
        if (i > 0) assert.ok(e.ts >= spans[i - 1].ts, `${nodes[i].name} starts before the node recorded ahead of it`);
      },
    );
  } finally {
    unet.destroy();
  }
});

profile('cpu fallback, on request: each node submitted alone, and the output says so', async () => {
  const files = tinyModelFiles();
  const unet = await UNet.compile(gpu, readUNet(files), { batch: 1 });
  try {
    const p = await profileForward(unet, { steps: 1, warmup: 0, forceCpuTiming: true });
    assert.is(p.timing, 'cpu-fallback');
    assert.is(p.events.length, unet.compiled.nodeList.length);
    assert.ok(p.events.every((e) => e.durationMs > 0));
    assert.ok(p.stepNodeSumsMs[0] <= p.stepTotalsMs[0] * 1.001, 'node times fit inside the wall time of the step');
    assert.ok(formatProfile(p).includes('cpu-fallback'));
    assert.is(chromeTrace(p).metadata.timing, 'cpu-fallback');
  } finally {
    unet.destroy();
  }
});

profile('as an observer: a DDIM sample is profiled step by step and comes out the same', async () => {
  const files = tinyModelFiles();
  const unet = await UNet.compile(gpu, readUNet(files), { batch: 1 });
  const sampler = new DdimSampler(gpu, unet, scheduleFromConfig(files.schedulerConfig as Record<string, unknown>));
  const profiler = new Profiler(gpu, unet.compiled);
  try {
    const plain = await sampler.sample({ steps: 4, seed: 5 });
    const profiled = await sampler.sample({ steps: 4, seed: 5, observers: [profiler] });
    assert.equal(Array.from(profiled.x0), Array.from(plain.x0), 'profiling changed the samples');
    const p = await profiler.finish();
    // With timestamps every step is timed as it ran; without, one forward is replayed node by node.
    assert.is(p.steps, profiler.timing === 'timestamp-query' ? plain.timesteps.length : 1);
    assert.is(p.events.length, p.steps * unet.compiled.nodeList.length);
  } finally {
    profiler.destroy();
    sampler.destroy();
    unet.destroy();
  }
});

profile('counted calls: a DDIM step is one submit and the graph plus the update', async () => {
  const files = tinyModelFiles();
  const unet = await UNet.compile(gpu, readUNet(files), { batch: 1 });
  const sampler = new DdimSampler(gpu, unet, scheduleFromConfig(files.schedulerConfig as Record<string, unknown>));
  try {
    await sampler.sample({ steps: 1, seed: 1 });
    const { result, counts } = await countGpuCalls((counter) => sampler.sample({ steps: 4, seed: 1, observers: [counter] }));
    const steps = result.timesteps.length;
    const nodes = unet.compiled.nodeList.length;
    // Per step: the UNet's dispatches and the update; plus the starting noise once.
    const perSteps = steps * (nodes + 1);
    assert.ok(
      counts.dispatches >= perSteps && counts.dispatches <= perSteps + 2,
      `${counts.dispatches} dispatches for ${steps} steps of ${nodes} nodes`,
    );
    assert.ok(counts.submits >= steps && counts.submits <= steps + 3, `${counts.submits} submits for ${steps} steps`);
    // Nothing of the device was replaced to count.
    assert.is(Object.prototype.hasOwnProperty.call(gpu.device.queue, 'submit'), false);
    assert.is(Object.prototype.hasOwnProperty.call(gpu.device, 'createCommandEncoder'), false);
  } finally {
    sampler.destroy();
    unet.destroy();
  }
});

profile('the CLI: sample --profile --trace prints the table and writes the trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ddim-profile-'));
  try {
    const model = writeTinyModel(join(dir, 'tiny'));
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), isTTY: false };
    const trace = join(dir, 'trace.json');
    const code = await cli([
      'sample',
      '--model',
      model,
      '--n',
      '1',
      '--steps',
      '2',
      '--out',
      join(dir, 's.png'),
      '--profile',
      '--trace',
      trace,
    ], io);
    assert.is(code, 0, stderr);
    assert.ok(/timing (timestamp-query|cpu-fallback)/.test(stderr), 'the profile goes to stderr');
    assert.ok(stderr.includes('dispatches'), 'with its per-kind table');
    assert.ok(stdout.includes(trace), 'the trace is listed among the outputs');
    const events = JSON.parse(readFileSync(trace, 'utf8')).traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    assert.ok(events.length > 0 && events.every((e: { name: string; dur: number }) => typeof e.name === 'string' && e.dur >= 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

profile('matmul floor: both variants compute the product (odd M, small sizes)', async () => {
  const odd = await measureMatmul(gpu, 'matmul', { m: 37, n: 72, k: 36 }, { repeats: 1, warmup: 0 });
  assert.ok(odd.maxError < 1e-5, `register-blocked matmul error ${odd.maxError}`);
  const tiled = await measureMatmul(gpu, 'matmul_tiled', { m: 128, n: 64, k: 48 }, { repeats: 1, warmup: 0 });
  assert.ok(tiled.maxError < 1e-5, `tiled matmul error ${tiled.maxError}`);
  assert.ok(odd.gflops > 0 && tiled.gflops > 0);
});

profile.run();
