import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, parseArgs } from '../scripts/bench.ts';
import { findPeerModel } from '../scripts/peers/bench_peers.ts';
import { randomExternalData, randomExternalDataChunks, tinyOnnxModel } from '../scripts/peers/onnx.ts';
import { externalDataFile } from '../scripts/peers/ort.ts';
import { ddimWithPeer } from '../scripts/peers/peers.ts';
import { requestGpu } from '../src/gpu/device.ts';
import { ddimSampleCpu } from '../src/sampler/reference.ts';
import { ddimTimesteps, scheduleFromConfig } from '../src/sampler/schedule.ts';
import { tinyModelFiles, writeTinyModel } from './util/tiny_model.ts';

const peers = suite('bench --peers');
const isDeno = 'Deno' in globalThis;

// onnxruntime-web's 27 MB WebAssembly takes V8's optimizing compiler ~2 minutes of CPU on other
// threads, and Node waits for that whenever its event loop runs empty: in session creation (71-273
// s for the two-convolution model here) or else at exit. V8's baseline code is enough to check the
// plumbing, so this process compiles WebAssembly with that only (the flag acts on later compiles).
if (!isDeno) (await import('node:v8')).setFlagsFromString('--liftoff-only');

peers('--peers --quick runs ONNX Runtime beside the engine and writes the peers field with ratios', async () => {
  const gpu = await requestGpu();
  const dir = mkdtempSync(join(tmpdir(), 'ddim-peers-'));
  try {
    // The tiny engine model (8x8) in a folder, and a tiny ONNX model of the same signature: this
    // checks the plumbing, not speed (the two are different networks).
    const model = writeTinyModel(join(dir, 'tiny'));
    const onnx = join(dir, 'tiny.onnx');
    writeFileSync(onnx, tinyOnnxModel({ size: 8 }));
    const file = join(dir, 'bench.json');
    let printed = '';
    const argv = ['--quick', '--model', model, '--peers', '--peer-onnx', onnx, '--batch', '2', '--json', file];
    await main(argv, { out: (s) => (printed += s + '\n'), err: () => {}, gpu });
    const r = JSON.parse(readFileSync(file, 'utf8'));
    const p = r.peers;
    assert.is(p.onnx.name, 'tiny.onnx');
    assert.is(p.engine.adapter, gpu.adapterName);
    assert.ok(p.engine.forwardMs > 0 && p.engine.ddimMs === r.ddim.wallMs && p.engine.ddimSteps === 1);

    const web = p.peers['ort-webgpu'];
    console.log(`    ort-webgpu: ${web.error ?? `${web.adapter}, forward ${web.forwardMs.toFixed(1)} ms`}`);
    assert.ok(!web.error, `ort-webgpu ran: ${web.error}`);
    assert.is(web.adapter, gpu.adapterName, "ORT-web ran on the engine's adapter");
    assert.is(web.sameAdapter, true);
    const cpu = p.peers['ort-cpu'];
    if (isDeno) {
      assert.match(cpu.error, /Node addon/);
    } else {
      console.log(`    ort-cpu: ${cpu.runtime}, forward ${cpu.forwardMs.toFixed(2)} ms`);
      assert.match(cpu.runtime, /^onnxruntime-node 1\.\d+\.\d+ \(CPU EP/);
    }
    for (const entry of isDeno ? [web] : [web, cpu]) {
      assert.ok(entry.forwardMs > 0 && entry.sessionMs > 0 && entry.firstForwardMs > 0);
      assert.is(entry.forwardMsAll.length, 1);
      assert.is(entry.ddim.forwards, r.ddim.forwards, 'the peer ran as many DDIM steps as the engine');
      assert.is(entry.ddim.images, 2);
      assert.ok(Math.abs(entry.timesEngine.forward - entry.forwardMs / p.engine.forwardMs) < 1e-9);
      assert.ok(Math.abs(entry.timesEngine.ddim - entry.ddim.wallMs / r.ddim.wallMs) < 1e-9);
      assert.is(entry.epsRelL2VsEngine, null, 'different weights: no agreement figure');
    }
    assert.ok(printed.includes('this engine') && printed.includes('ort-webgpu'), "the table has the peers' rows");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

peers("the peers' DDIM loop in JS is the engine's DDIM (against the float64 CPU reference)", async () => {
  const schedule = scheduleFromConfig(tinyModelFiles().schedulerConfig as Record<string, unknown>);
  const perImage = 12;
  // A stand-in for a network: eps is a fixed function of x and t.
  const eps = (x: Float32Array, t: number) => x.map((v, i) => 0.3 * Math.sin(v + i) + t / 2000);
  let start: Float32Array | undefined;
  const { x0, forwards } = await ddimWithPeer(
    {
      forward: async (x, t) => {
        start ??= x.slice();
        return eps(x, t[0]);
      },
    },
    schedule,
    { steps: 5, images: 1, perImage, seed: 4 },
  );
  const reference = ddimSampleCpu(schedule, start!, ddimTimesteps(5, 'uniform', schedule.numTrainTimesteps), eps);
  assert.is(forwards, 5);
  let worst = 0;
  for (let i = 0; i < perImage; i++) worst = Math.max(worst, Math.abs(x0[i] - reference.x[i]));
  console.log(`    max |JS loop - float64 reference| = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5);
});

peers("the peers' options and models: clear refusals, external data of the stated size", () => {
  assert.equal(parseArgs(['--peers']).peers, ['ort-webgpu', 'ort-cpu']);
  assert.equal(parseArgs(['--peers=ort-cpu']).peers, ['ort-cpu']);
  assert.throws(() => parseArgs(['--peers=tensorflow']), /--peers= takes ort-webgpu and\/or ort-cpu/);
  assert.throws(() => parseArgs(['--peer-onnx', 'x.onnx']), /goes with --peers/);
  assert.is(parseArgs(['--layout', 'sd15', '--peers', '--component', 'vae-decoder', '--batch', '2']).component, 'vae-decoder');
  assert.throws(() => parseArgs(['--layout', 'sd15', '--peers', '--component', 'text-encoder']), /--component takes unet or vae-decoder/);
  assert.throws(() => parseArgs(['--layout', 'sd15', '--component', 'unet']), /--component goes with --layout sd15 or sd21 and --peers/);
  assert.throws(() => parseArgs(['--layout', 'sd15', '--batch', '2']), /not --batch/);
  const missing = findPeerModel({ peersDir: '/nonexistent', modelName: 'emoji32' });
  assert.match((missing as { missing: string }).missing, /emoji32\.onnx is missing/);
  assert.match((findPeerModel({ peersDir: '.', modelName: 'mine' }) as { missing: string }).missing, /--peer-onnx FILE/);
  const dir = mkdtempSync(join(tmpdir(), 'ddim-peers-'));
  try {
    writeFileSync(join(dir, 'cifar10.onnx'), tinyOnnxModel());
    writeFileSync(join(dir, 'cifar10.json'), '{"externalData": "cifar10.onnx.data", "bytes": 4096}');
    const found = findPeerModel({ peersDir: dir, layout: 'cifar10', modelName: 'cifar10 layout' });
    assert.equal((found as { externalData: unknown }).externalData, { path: 'cifar10.onnx.data', bytes: 4096 });
    writeFileSync(join(dir, 'cifar10.json'), '{ not json');
    assert.match((findPeerModel({ peersDir: dir, layout: 'cifar10', modelName: 'x' }) as { missing: string }).missing, /is not JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const data = new Float32Array(randomExternalData(4096).buffer);
  assert.ok(data.every((v) => Number.isFinite(v) && Math.abs(v) <= 0.025) && new Set(data).size > 1000);
  assert.throws(() => randomExternalData(6), /whole float32/);
});

peers('--layout sd15 --peers --component vae-decoder: the engine and both peers on the same latents, the data file made once', async () => {
  // The SD UNet's ONNX graph needs all 3.44 GB of weights at any latent size, so the plumbing is
  // checked on the VAE decoder's 198 MB (the UNet takes the same path with three named inputs).
  const gpu = await requestGpu();
  const dir = mkdtempSync(join(tmpdir(), 'ddim-sd-peers-'));
  try {
    const file = join(dir, 'sd.json');
    let printed = '';
    const argv = [
      '--layout',
      'sd15',
      '--peers',
      '--component',
      'vae-decoder',
      '--height',
      '16',
      '--width',
      '16',
      '--quick',
      '--json',
      file,
    ];
    await main(argv, { out: (s) => (printed += s + '\n'), err: () => {}, gpu });
    const r = JSON.parse(readFileSync(file, 'utf8'));
    assert.is(r.component, 'vae-decoder');
    assert.equal(r.forward.inputs, { z: [1, 4, 2, 2] });
    assert.ok(r.forward.wallMs > 0 && r.forward.wallMs === r.peers.engine.forwardMs);
    assert.is(r.model.params, 83653863, "the engine's decoder has the ONNX graph's parameter count (sd15_vae_decoder.json)");
    assert.is(r.guidedUpdateMs, null);
    const web = r.peers.peers['ort-webgpu'];
    console.log(`    ort-webgpu: ${web.error ?? `${web.adapter}, forward ${web.forwardMs.toFixed(1)} ms`}`);
    assert.ok(!web.error, `ort-webgpu ran: ${web.error}`);
    assert.is(web.sameAdapter, true);
    const cpu = r.peers.peers['ort-cpu'];
    if (isDeno) assert.match(cpu.error, /Node addon/);
    else console.log(`    ort-cpu: ${cpu.runtime}, forward ${cpu.forwardMs.toFixed(1)} ms`);
    for (const entry of isDeno ? [web] : [web, cpu]) {
      assert.ok(entry.forwardMs > 0 && entry.sessionMs > 0 && entry.firstForwardMs > 0);
      assert.ok(Math.abs(entry.timesEngine - entry.forwardMs / r.forward.wallMs) < 1e-9);
    }
    assert.ok(printed.includes('this engine') && printed.includes('sd15_vae_decoder.onnx'), 'the table names the engine and the graph');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

peers("external data: written in chunks with the whole array's values, once, and reused while its size is right", () => {
  const whole = randomExternalData(40, 5);
  const pieces = [...randomExternalDataChunks(40, 5, 12)];
  assert.equal(pieces.map((p) => p.length), [12, 12, 12, 4]);
  assert.equal(Uint8Array.from(pieces.flatMap((p) => [...p])), whole);
  assert.throws(() => [...randomExternalDataChunks(8, 1, 6)], /chunks of 6 bytes/);
  const dir = mkdtempSync(join(tmpdir(), 'ddim-peers-cache-'));
  try {
    const model = { name: 'm.onnx', graph: new Uint8Array(), externalData: { path: 'm.onnx.data', bytes: 4096 }, sameWeights: false };
    const file = externalDataFile(model, dir);
    assert.equal(new Uint8Array(readFileSync(file)), randomExternalData(4096));
    writeFileSync(file, 'marker, not 4096 bytes');
    assert.equal(new Uint8Array(readFileSync(externalDataFile(model, dir))), randomExternalData(4096), 'a wrong size is made again');
    const before = statSync(file).mtimeMs;
    externalDataFile(model, dir);
    assert.is(statSync(file).mtimeMs, before, 'the right size is reused');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

peers.run();
