/**
 * ONNX Runtime in Node and Deno, beside the engine in one process:
 * - 'ort-webgpu': onnxruntime-web's WebGPU EP on the engine's own WebGPU instance (Dawn's in
 *   Node, Deno's built-in one in Deno), so it gets the same adapter;
 * - 'ort-cpu': onnxruntime-node's CPU EP (Node only: a native addon).
 * Both are dev dependencies, loaded here by variable specifiers so no bundle follows them.
 */
import { closeSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Gpu } from '../../src/gpu/device.ts';
import { type PeerModel, randomExternalDataChunks } from './onnx.ts';
import { type OrtLike, ortPeer, type OrtSessionLike, type PeerName, type PeerSession } from './peers.ts';

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

/** Where a graph-only model's files go by default: the graph and its made-up external data, kept between runs. */
export const DEFAULT_PEER_CACHE = 'build/peers';

/**
 * The made-up external data of a graph-only model as a file in the cache, written once (64 MiB at
 * a time, never whole in memory: SD 1.5's UNet has 3.44 GB) and reused while its size is right.
 * It is written under a temporary name and renamed, so an interrupted fill is never taken for one.
 */
export function externalDataFile(model: PeerModel, cacheDir: string, log?: (line: string) => void): string {
  if (!model.externalData) throw new Error(`${model.name} has its weights inside: no external data to fill`);
  const { path, bytes } = model.externalData;
  const file = join(cacheDir, model.name.replace(/[^\w.-]/g, '_'), path);
  let size = -1;
  try {
    size = statSync(file).size;
  } catch { /* not made yet */ }
  if (size === bytes) return file;
  mkdirSync(dirname(file), { recursive: true });
  log?.(`  filling ${file} with ${(bytes / 1e9).toFixed(2)} GB of random float32 weights (once; reused by later runs) ...`);
  const partial = `${file}.partial`;
  const fd = openSync(partial, 'w');
  try {
    for (const chunk of randomExternalDataChunks(bytes)) {
      for (let written = 0; written < chunk.length;) written += writeSync(fd, chunk, written);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(partial, file);
  return file;
}

/** A whole file in one array, read in pieces (readFileSync stops at 2 GiB; streams would be concatenated, a second copy). */
function readWhole(file: string): Uint8Array {
  const data = new Uint8Array(statSync(file).size);
  const fd = openSync(file, 'r');
  try {
    for (let offset = 0; offset < data.length;) {
      const read = readSync(fd, data, offset, Math.min(64 * 2 ** 20, data.length - offset), offset);
      if (read <= 0) throw new Error(`${file} ended after ${offset} of ${data.length} bytes`);
      offset += read;
    }
  } finally {
    closeSync(fd);
  }
  return data;
}

/** The graph and its external data as files, for onnxruntime-node (which reads external data beside the graph). */
function onDisk(model: PeerModel, cacheDir: string, log?: (line: string) => void): string {
  const dir = resolve(cacheDir, model.name.replace(/[^\w.-]/g, '_'));
  mkdirSync(dir, { recursive: true });
  const graph = join(dir, 'model.onnx');
  writeFileSync(graph, model.graph);
  if (model.externalData) externalDataFile(model, cacheDir, log);
  return graph;
}

export interface OpenPeerOptions {
  gpu: Gpu;
  model: PeerModel;
  /** Where a graph-only model's made-up external data is written once and reused (DEFAULT_PEER_CACHE). */
  cacheDir?: string;
  log?: (line: string) => void;
}

/** One peer's ONNX Runtime with the model in a session, before any inputs are decided. */
export interface OrtPeerSession {
  ort: OrtLike;
  session: OrtSessionLike;
  runtime: string;
  adapter: string;
  /** ms to create the session (model parsed, graph optimised, weights uploaded). */
  sessionMs: number;
}

/** Creates the model's session in one peer; throws PeerUnavailableError when the peer cannot run in this runtime. */
export async function openOrtSession(name: PeerName, options: OpenPeerOptions): Promise<OrtPeerSession> {
  const { model } = options;
  const cacheDir = options.cacheDir ?? DEFAULT_PEER_CACHE;
  if (name === 'ort-webgpu') {
    let ort: OrtLike;
    try {
      ort = await loadOrtWeb(options.gpu);
    } catch (e) {
      throw new PeerUnavailableError(`onnxruntime-web could not be loaded: ${(e as Error).message} (npm install)`);
    }
    // ORT-web takes external data as bytes: the cached file read once into one array (its own
    // reading of a path would concatenate chunks, a second copy), dropped once the session holds it.
    let externalData = model.externalData
      ? [{ path: model.externalData.path, data: readWhole(externalDataFile(model, cacheDir, options.log)) }]
      : undefined;
    const start = performance.now();
    let session: OrtSessionLike;
    try {
      session = await ort.InferenceSession.create(model.graph, { executionProviders: ['webgpu'], externalData, logSeverityLevel: 3 });
    } finally {
      externalData = undefined;
    }
    const sessionMs = performance.now() - start;
    const device = await (ort.env as { webgpu?: { device?: Promise<GPUDevice> } }).webgpu?.device;
    return {
      ort,
      session,
      runtime: `onnxruntime-web ${ort.env.versions?.web ?? '?'} (WebGPU EP)`,
      adapter: describeDevice(device, options.gpu.implementation),
      sessionMs,
    };
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
  const file = onDisk(model, cacheDir, options.log);
  const threads = cpus().length;
  const start = performance.now();
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], intraOpNumThreads: threads, logSeverityLevel: 3 });
  const sessionMs = performance.now() - start;
  const version = ort.env.versions?.node ?? ort.env.versions?.common ?? '?';
  return {
    ort,
    session,
    runtime: `onnxruntime-node ${version} (CPU EP, ${threads} threads)`,
    adapter: `${cpus()[0]?.model.trim() ?? 'CPU'} x ${threads}`,
    sessionMs,
  };
}

/** Loads one peer with a UNet2DModel-signature model (x, t -> eps); throws PeerUnavailableError when it cannot run here. */
export async function openPeer(
  name: PeerName,
  options: OpenPeerOptions & { imageShape: [number, number, number] },
): Promise<PeerSession> {
  const { ort, session, ...info } = await openOrtSession(name, options);
  return ortPeer(ort, session, { name, ...info, imageShape: options.imageShape });
}
