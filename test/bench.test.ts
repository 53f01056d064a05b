import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, parseArgs } from '../scripts/bench.ts';
import { LAYOUTS } from '../scripts/layouts.ts';
import { requestGpu } from '../src/gpu/device.ts';
import { parseUNetConfig } from '../src/models/unet_2d_config.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import type { WeightSource } from '../src/models/weights.ts';
import { tinyModelFiles, writeTinyModel } from './util/tiny_model.ts';

/** Zeros of every weight's shape: enough to build a graph and count its FLOPs; counts the parameters. */
function shapesOnly(): WeightSource & { params: number } {
  const source = {
    params: 0,
    take: (name: string, ...shapes: number[][]) => {
      const size = shapes[0].reduce((a, b) => a * b, 1);
      source.params += size;
      return { name, shape: shapes[0], data: new Float32Array(size) };
    },
  };
  return source;
}

const bench = suite('bench');

bench('--quick runs on a model folder and writes its JSON, naming the adapter', async () => {
  const gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}`);
  const dir = mkdtempSync(join(tmpdir(), 'ddim-bench-'));
  try {
    // The smallest setting: a tiny random model (8x8 images) in a folder, as a user's would be.
    const files = tinyModelFiles();
    const model = writeTinyModel(join(dir, 'tiny'), files);
    const file = join(dir, 'out', 'bench.json');
    let printed = '';
    const returned = await main(['--quick', '--model', model, '--json', file], { out: (s) => (printed += s + '\n'), err: () => {}, gpu });
    const r = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(r, JSON.parse(JSON.stringify(returned)));
    assert.is(r.adapter, gpu.adapterName);
    assert.ok(printed.includes(gpu.adapterName), 'the table names the adapter');
    assert.is(r.model.name, 'tiny');
    assert.is(r.model.batch, 1);
    assert.is(r.model.sampleSize, 8);
    const graphFlops = buildUNetGraph(parseUNetConfig(files.config), shapesOnly(), { batch: 1 }).nodes.reduce((a, n) => a + n.flops, 0);
    assert.ok(Math.abs(r.graph.gflopPerForward * 1e9 - graphFlops) < 1, `${r.graph.gflopPerForward} GFLOP per forward`);
    assert.ok(r.graph.dispatchesPerForward > 10);
    assert.ok(r.ddim.dispatchesPerStep >= r.graph.dispatchesPerForward + 1, 'a DDIM step dispatches the graph and the update');
    assert.ok(r.ddim.counts.submits >= r.ddim.forwards);
    assert.ok(r.forward.wallMs > 0 && r.ddim.wallMs > 0);
    assert.ok(r.floor.gflops > 0 && r.floor.best.maxError < 1e-3);
    for (const value of [r.forward.wallOverFloor, r.ddim.wallOverFloor, r.forward.gflopsWall, r.ddim.gflops]) {
      assert.ok(Number.isFinite(value) && value > 0);
    }
    assert.is(r.forward.gpuMs === null, !gpu.hasTimestamps);
    assert.ok(r.forward.cpuMs > 0, 'the script hands the benchmark a CPU clock');
    assert.ok(r.profile.kinds.length > 3);
    assert.is(r.host.settings.quick, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

bench('the command line refuses what it cannot do', () => {
  assert.throws(() => parseArgs(['--layout', 'imagenet']), /cifar10 or celebahq/);
  assert.throws(() => parseArgs(['--model', 'x', '--layout', 'cifar10']), /not both/);
  assert.throws(() => parseArgs(['--batch', '0']), /positive integer/);
  assert.throws(() => parseArgs(['--frobnicate']), /unknown option/);
  assert.equal(parseArgs(['--layout', 'cifar10', '--batch', '4']).batch, 4);
});

bench('layouts: parameters and FLOPs of the checkpoints and of emoji32 match anchors.md', () => {
  // anchors.md: 35.7M, 113.7M and 8.95M parameters; 12.44, 497.0 and 3.20 GFLOP per image per forward.
  const emoji32 = { config: JSON.parse(readFileSync('weights/emoji32/config.json', 'utf8')) };
  const expected = {
    cifar10: { params: 35.7e6, gflop: 12.44 },
    celebahq: { params: 113.7e6, gflop: 497.0 },
    emoji32: { params: 8.95e6, gflop: 3.20 },
  };
  for (const [name, layout] of [...Object.entries(LAYOUTS), ['emoji32', emoji32] as const]) {
    const want = expected[name as keyof typeof expected];
    const weights = shapesOnly();
    const graph = buildUNetGraph(parseUNetConfig(layout.config), weights, { batch: 1 });
    const params = weights.params;
    assert.ok(Math.abs(params - want.params) < 0.05e6, `${name}: ${params} parameters`);
    const gflop = graph.nodes.reduce((a, n) => a + n.flops, 0) / 1e9;
    assert.ok(Math.abs(gflop - want.gflop) / want.gflop < 0.01, `${name}: ${gflop} GFLOP per forward`);
  }
});

bench.run();
