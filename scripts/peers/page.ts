/**
 * The browser side of `npm run bench:browser`: in one page, on the page's `navigator.gpu`, the
 * engine's emoji32 forward and DDIM sample, then onnxruntime-web's WebGPU EP on the same model,
 * timed as scripts/peers/peers.ts times every peer. Bundled by scripts/peers/browser.mjs; ORT is
 * loaded from /ort/ at run time (it is not in the bundle), as a page would load it.
 * Query: ?batch=N&steps=S&repeats=R&warmup=W. The result lands in window.peersResult and #result.
 */
import { requestGpu } from '../../src/gpu/device.ts';
import { readUNet, UNet } from '../../src/models/unet_2d_model.ts';
import { DdimSampler } from '../../src/sampler/ddim.ts';
import { scheduleFromConfig } from '../../src/sampler/schedule.ts';
import { median } from '../../src/profile/timing.ts';
import { loadModel } from '../../src/web/load_model.ts';
import { type OrtLike, ortPeer, relativeL2, timePeer, uniformInput } from './peers.ts';

const params = new URLSearchParams(location.search);
const num = (name: string, fallback: number) => Number(params.get(name) ?? fallback);
const batch = num('batch', 1);
const steps = num('steps', 2);
const repeats = num('repeats', 1);
const warmup = num('warmup', 1);
const status = document.getElementById('status')!;
const log = (line: string) => {
  status.textContent += line + '\n';
  console.log(line);
};
const describe = (info: GPUAdapterInfo | undefined) =>
  info ? (info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ')) + ' [browser]' : '?';

async function run() {
  const gpu = await requestGpu();
  log(`engine on ${gpu.adapterName}`);
  const files = await loadModel(new URL('/weights/emoji32/', location.href).href);
  const unet = await UNet.compile(gpu, readUNet(files), { batch });
  const [, c, h, w] = unet.sampleShape;
  const x = uniformInput(batch * c * h * w, 7);
  const t = new Int32Array(batch).fill(500);
  let start = performance.now();
  const engineEps = await unet.forward(x, t);
  const engineFirstMs = performance.now() - start;
  for (let i = 1; i < warmup; i++) await unet.forward(x, t);
  const engineAll: number[] = [];
  for (let i = 0; i < repeats; i++) {
    start = performance.now();
    await unet.forward(x, t);
    engineAll.push(performance.now() - start);
  }
  log(`engine forward ${median(engineAll).toFixed(1)} ms; DDIM-${steps} ...`);
  const schedule = scheduleFromConfig(files.schedulerConfig as Record<string, unknown> | undefined);
  const sampler = new DdimSampler(gpu, unet, schedule);
  await sampler.sample({ steps: 1, seed: 0, count: batch });
  start = performance.now();
  const sample = await sampler.sample({ steps, seed: 0, count: batch });
  const engineDdimMs = performance.now() - start;
  sampler.destroy();
  unet.destroy();

  log('onnxruntime-web (WebGPU EP) ...');
  const ortUrl = '/ort/ort.webgpu.min.mjs';
  const ort = (await import(/* @vite-ignore */ ortUrl)) as OrtLike & { env: { wasm: { wasmPaths?: string; numThreads?: number } } };
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 1;
  const graph = new Uint8Array(await (await fetch('/peers/emoji32.onnx')).arrayBuffer());
  start = performance.now();
  const session = await ort.InferenceSession.create(graph, { executionProviders: ['webgpu'] });
  const sessionMs = performance.now() - start;
  const device = await (ort.env as unknown as { webgpu: { device: Promise<GPUDevice & { adapterInfo?: GPUAdapterInfo }> } }).webgpu.device;
  const adapter = describe(device.adapterInfo);
  const peer = ortPeer(ort, session, {
    name: 'ort-webgpu',
    runtime: 'onnxruntime-web (WebGPU EP)',
    adapter,
    sessionMs,
    imageShape: [c, h, w],
  });
  const { output, ...timings } = await timePeer(peer, schedule, { batch, imageShape: [c, h, w], steps, repeats, warmup, log });
  await peer.release();
  const engineForwardMs = median(engineAll);
  return {
    userAgent: navigator.userAgent,
    engine: {
      adapter: gpu.adapterName,
      firstForwardMs: engineFirstMs,
      forwardMs: engineForwardMs,
      forwardMsAll: engineAll,
      ddim: { steps, forwards: sample.timesteps.length, wallMs: engineDdimMs },
    },
    'ort-webgpu': {
      runtime: `onnxruntime-web ${(ort.env.versions ?? {}).web ?? '?'} (WebGPU EP)`,
      adapter,
      sessionMs,
      ...timings,
      timesEngine: { forward: timings.forwardMs / engineForwardMs, ddim: timings.ddim.wallMs / engineDdimMs },
      epsRelL2VsEngine: relativeL2(engineEps, output),
    },
  };
}

run().then(
  (result) => {
    (globalThis as unknown as { peersResult: unknown }).peersResult = result;
    document.getElementById('result')!.textContent = JSON.stringify(result, null, 2);
  },
  (error) => {
    document.getElementById('result')!.textContent = `error: ${error?.stack ?? error}`;
    (globalThis as unknown as { peersResult: unknown }).peersResult = { error: String(error?.message ?? error) };
  },
);
