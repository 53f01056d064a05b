/**
 * ONNX Runtime in Node and Deno, beside the engine in one process:
 * - 'ort-webgpu': onnxruntime-web's WebGPU EP on the engine's own WebGPU instance (Dawn's in
 *   Node, Deno's built-in one in Deno), so it gets the same adapter;
 * - 'ort-cpu': onnxruntime-node's CPU EP (Node only: a native addon).
 * Both are dev dependencies, loaded here by variable specifiers so no bundle follows them.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Gpu } from '../../src/gpu/device.ts';
import { type PeerModel, randomExternalData } from './onnx.ts';
import { type OrtLike, ortPeer, type PeerName, type PeerSession } from './peers.ts';

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const isDeno = typeof g.Deno !== 'undefined';

/** Raised when a peer cannot run here; the benchmark records the message instead of its numbers. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError';
}

/**
 * Dawn's `queue.writeBuffer` refuses views of a SharedArrayBuffer, which is what onnxruntime-web
 * hands it (its threaded WebAssembly memory): such data is copied into an ArrayBuffer first. The
 * engine's own calls pass ArrayBuffer-backed arrays and go through untouched.
 */
function acceptSharedMemoryWrites(queue: GPUQueue): void {
  const proto = Object.getPrototypeOf(queue) as GPUQueue & { __peersPatched?: boolean };
  if (proto.__peersPatched) return;
  const original = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer, offset, data, dataOffset?, size?) {
    if (ArrayBuffer.isView(data) && !(data.buffer instanceof ArrayBuffer)) {
      const unit = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const start = data.byteOffset + (dataOffset ?? 0) * unit;
      const length = size !== undefined ? size * unit : data.byteLength - (dataOffset ?? 0) * unit;
      return original.call(this, buffer, offset, new Uint8Array(data.buffer, start, length).slice());
    }
    return original.call(this, buffer, offset, data, dataOffset, size);
  } as GPUQueue['writeBuffer'];
  proto.__peersPatched = true;
}

let ortWeb: Promise<OrtLike> | undefined;

/** onnxruntime-web's WebGPU build, with `navigator.gpu` pointed at the engine's instance. */
function loadOrtWeb(gpu: Gpu): Promise<OrtLike> {
  if (ortWeb) return ortWeb;
  // ORT asks navigator.gpu for its adapter: give it the very instance the engine's adapter came from.
  if (!g.navigator) Object.defineProperty(g, 'navigator', { value: {}, configurable: true, writable: true });
  if (g.navigator.gpu !== gpu.instance) Object.defineProperty(g.navigator, 'gpu', { value: gpu.instance, configurable: true });
  acceptSharedMemoryWrites(gpu.device.queue);
  const specifier = 'onnxruntime-web/webgpu';
  ortWeb = import(specifier).then((m) => {
    const ort = (m.default ?? m) as OrtLike & { env: { logLevel?: string; wasm: { numThreads?: number } } };
    ort.env.logLevel = 'error'; // not its notes on which nodes it keeps on the CPU
    // One WebAssembly thread, as a page that is not cross-origin isolated gets: the WebGPU EP keeps
    // only shape arithmetic on the CPU, and in Node its worker threads made a tiny model's session
    // take 127 s instead of 5 on two busy cores.
    ort.env.wasm.numThreads = 1;
    return ort;
  });
  return ortWeb;
}

function describeDevice(device: GPUDevice | undefined, implementation: string): string {
  const info = (device as (GPUDevice & { adapterInfo?: GPUAdapterInfo }) | undefined)?.adapterInfo;
  if (!info) return 'unknown adapter';
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ');
  return `${name || 'unknown adapter'} [${implementation}]`;
}

/** The graph and its external data as files, for onnxruntime-node (which reads external data beside the graph). */
function onDisk(model: PeerModel, cacheDir: string): string {
  const dir = resolve(cacheDir, model.name.replace(/[^\w.-]/g, '_'));
  mkdirSync(dir, { recursive: true });
  const graph = join(dir, 'model.onnx');
  writeFileSync(graph, model.graph);
  if (model.externalData) {
    const data = join(dir, model.externalData.path);
    let size = -1;
    try {
      size = statSync(data).size;
    } catch { /* not made yet */ }
    if (size !== model.externalData.bytes) {
      mkdirSync(dirname(data), { recursive: true });
      writeFileSync(data, randomExternalData(model.externalData.bytes));
    }
  }
  return graph;
}

export interface OpenPeerOptions {
  gpu: Gpu;
  model: PeerModel;
  imageShape: [number, number, number];
  /** Where onnxruntime-node's copy of a graph with made-up external data goes (build/peers). */
  cacheDir?: string;
}

/** Loads one peer with the model; throws PeerUnavailableError when it cannot run in this runtime. */
export async function openPeer(name: PeerName, options: OpenPeerOptions): Promise<PeerSession> {
  const { model, imageShape } = options;
  if (name === 'ort-webgpu') {
    let ort: OrtLike;
    try {
      ort = await loadOrtWeb(options.gpu);
    } catch (e) {
      throw new PeerUnavailableError(`onnxruntime-web could not be loaded: ${(e as Error).message} (npm install)`);
    }
    const externalData = model.externalData
      ? [{ path: model.externalData.path, data: randomExternalData(model.externalData.bytes) }]
      : undefined;
    const start = performance.now();
    const session = await ort.InferenceSession.create(model.graph, { executionProviders: ['webgpu'], externalData });
    const sessionMs = performance.now() - start;
    const device = await (ort.env as { webgpu?: { device?: Promise<GPUDevice> } }).webgpu?.device;
    return ortPeer(ort, session, {
      name,
      runtime: `onnxruntime-web ${ort.env.versions?.web ?? '?'} (WebGPU EP)`,
      adapter: describeDevice(device, options.gpu.implementation),
      sessionMs,
      imageShape,
    });
  }
  if (isDeno) throw new PeerUnavailableError('onnxruntime-node is a Node addon: run the benchmark under Node for the CPU peer');
  let ort: OrtLike;
  try {
    const specifier = 'onnxruntime-node';
    const m = await import(specifier);
    ort = (m.default ?? m) as OrtLike;
  } catch (e) {
    throw new PeerUnavailableError(`onnxruntime-node could not be loaded: ${(e as Error).message} (npm install)`);
  }
  const file = onDisk(model, options.cacheDir ?? 'build/peers');
  const threads = cpus().length;
  const start = performance.now();
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], intraOpNumThreads: threads, logSeverityLevel: 3 });
  const sessionMs = performance.now() - start;
  const version = ort.env.versions?.node ?? ort.env.versions?.common ?? '?';
  return ortPeer(ort, session, {
    name,
    runtime: `onnxruntime-node ${version} (CPU EP, ${threads} threads)`,
    adapter: `${cpus()[0]?.model.trim() ?? 'CPU'} x ${threads}`,
    sessionMs,
    imageShape,
  });
}
