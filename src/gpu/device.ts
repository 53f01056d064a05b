/**
 * One way to get a WebGPU device in browsers, Deno and Node.
 *
 * - Browser: `navigator.gpu`.
 * - Deno: its built-in `navigator.gpu` (wgpu) by default, or Dawn through `npm:webgpu` with
 *   `backend: 'dawn'`, so both WebGPU implementations can be exercised.
 * - Node: Dawn through the `webgpu` npm package.
 *
 * On a machine with no GPU, `scripts/fetch-lavapipe.sh` unpacks Mesa's software Vulkan driver into
 * `.vulkan/` of the project; the engine adds it to the Vulkan loader's driver list by itself, so
 * no environment variable is needed.
 */

import { isSoftwareAdapter } from './adapter.ts';
import { spaceDawnTicks } from './dawn_ticks.ts';
import { withDawnNotesHeldBack } from './dawn_stderr.ts';

export type Backend = 'auto' | 'native' | 'dawn';

export interface GpuOptions {
  /** 'native' is `navigator.gpu`; 'dawn' is the `webgpu` npm package; 'auto' picks per runtime. */
  backend?: Backend;
  powerPreference?: GPUPowerPreference;
  /** Folder holding `lvp_icd.json` of a software Vulkan driver, found by itself when omitted. */
  softwareDriverDir?: string;
  /**
   * Dawn only: how far apart (ms) Dawn polls for finished GPU work while the device is on a
   * software adapter, where its busy polling takes a core from the CPU that runs the "GPU" (see
   * src/gpu/dawn_ticks.ts). 1 by default; 0 leaves Dawn's own loop. Real GPUs keep Dawn's loop.
   */
  softwarePollMs?: number;
  /**
   * A GPU memory budget in bytes (WebGPU reports no total): a graph that would take the engine's
   * buffers past it is refused with a ModelTooLargeError before anything is uploaded.
   */
  maxMemoryBytes?: number;
}

export interface Gpu {
  device: GPUDevice;
  adapter: GPUAdapter;
  /** A human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) [dawn]". */
  adapterName: string;
  /** Which WebGPU implementation: 'browser', 'deno-wgpu' or 'dawn'. */
  implementation: string;
  hasTimestamps: boolean;
  /** Errors the device reported outside any error scope, newest last. */
  uncapturedErrors: string[];
  /**
   * Dawn's notes on finding the adapter that were kept off stderr, for a verbose log: on lavapipe,
   * that it lowered the adapter's dynamic buffer counts to its caps (src/gpu/dawn_stderr.ts).
   */
  adapterNotes: string[];
  /** Resolves with a message when the device is lost. */
  lost: Promise<string>;
  /** The GPU instance: Dawn destroys its instance when this is collected, so it is kept here. */
  instance: GPU;
  /** The budget of GpuOptions.maxMemoryBytes, if one was given (src/gpu/memory_budget.ts). */
  maxMemoryBytes?: number;
  /**
   * Where the driver generates a program's code at its first run and keeps it in a shader cache
   * that other devices read (Mesa's llvmpipe, under Dawn): a second device on the same adapter,
   * made for the caller, who destroys it. Compiling graphs uses it to compile half the programs
   * on another core (src/gpu/kernel.ts, loadKernels).
   */
  compileHelper?: () => Promise<GPUDevice | undefined>;
}

/** Raised when the device is lost (driver reset, destroy()) while work was waited for. */
export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

const lostDevices = new WeakMap<GPUDevice, Promise<never>>();

/**
 * Waits for `work` unless the device is lost first: then rejects with DeviceLostError, so a lost
 * device never leaves a caller waiting forever on a map or a queue that will not answer.
 */
export function unlessLost<T>(device: GPUDevice, work: Promise<T>): Promise<T> {
  let lost = lostDevices.get(device);
  if (!lost) {
    lost = device.lost.then((info) => {
      throw new DeviceLostError(`the GPU device was lost (${info.reason}): ${info.message || 'no message'}`);
    });
    lost.catch(() => {}); // observed here so an unawaited loss is not an unhandled rejection
    lostDevices.set(device, lost);
  }
  return Promise.race([work, lost]);
}

/** Raised when no adapter or device can be had; its message says how to get one. */
export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const isDeno = typeof g.Deno !== 'undefined';
const isNode = !isDeno && typeof g.process !== 'undefined' && !!g.process.versions?.node;

const NO_ADAPTER_HELP = 'No WebGPU adapter was found. On a machine without a GPU, install the software Vulkan driver ' +
  'with `bash scripts/fetch-lavapipe.sh` (it needs `apt-get install libvulkan1`), or point ' +
  'VK_ICD_FILENAMES at a Vulkan driver. In a browser, use one with WebGPU enabled ' +
  '(Chromium: --enable-unsafe-webgpu).';

function getEnv(name: string): string | undefined {
  if (isDeno) return g.Deno.env.get(name);
  if (isNode) return g.process.env[name];
  return undefined;
}

function setEnv(name: string, value: string): void {
  if (isDeno) g.Deno.env.set(name, value);
  else if (isNode) g.process.env[name] = value;
}

/** Walks up from this module's folder to find the project's `.vulkan/lvp_icd.json`. */
async function findSoftwareDriver(explicitDir?: string): Promise<string | undefined> {
  if (!isDeno && !isNode) return undefined;
  const { existsSync } = await import('node:fs');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const candidates: string[] = [];
  const fromEnv = explicitDir ?? getEnv('DDIM_VULKAN_DIR');
  if (fromEnv) candidates.push(path.join(fromEnv, 'lvp_icd.json'));
  if (import.meta.url.startsWith('file:')) {
    let dir = path.dirname(fileURLToPath(import.meta.url));
    for (;;) {
      candidates.push(path.join(dir, '.vulkan', 'lvp_icd.json'));
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  candidates.push(path.join(g.process?.cwd?.() ?? '.', '.vulkan', 'lvp_icd.json'));
  return candidates.find((c) => existsSync(c));
}

/** Makes the project's software driver visible to the Vulkan loader, beside any real GPU. */
async function offerSoftwareDriver(explicitDir?: string): Promise<boolean> {
  if (getEnv('VK_ICD_FILENAMES') || getEnv('VK_DRIVER_FILES')) return false;
  const icd = await findSoftwareDriver(explicitDir);
  if (!icd) return false;
  const current = getEnv('VK_ADD_DRIVER_FILES');
  if (current?.split(':').includes(icd)) return false;
  setEnv('VK_ADD_DRIVER_FILES', current ? `${current}:${icd}` : icd);
  return true;
}

/**
 * Dawn's instance, made once per process. Dawn tears its instance down when the JS object is
 * collected, even while devices made from it are still in use (a crash in ProcessEvents), so the
 * module keeps it for the life of the process.
 */
let dawnInstance: GPU | undefined;

async function dawnGpu(): Promise<GPU> {
  if (dawnInstance) return dawnInstance;
  // A variable specifier keeps bundlers for the browser from following this import.
  const specifier = 'webgpu';
  let mod: { create(flags: string[]): GPU; globals: object };
  try {
    mod = await import(isDeno ? `npm:${specifier}@0.6.2` : specifier);
  } catch (e) {
    throw new GpuUnavailableError(
      `Dawn's WebGPU bindings (the 'webgpu' npm package) could not be loaded: ${(e as Error).message}. ` +
        'Run `npm install` in the project.',
    );
  }
  // Dawn's classes (GPUBufferUsage, ...) must be global, as they are in a browser.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in g)) g[k] = v;
  // Dawn rounds timestamps to 65.536 µs by default, which hides per-node times on a real GPU; and
  // it offers shader-f16 on NVIDIA's Vulkan driver only with this toggle (precision 'f16').
  dawnInstance = mod.create(['disable-dawn-features=timestamp_quantization', 'enable-dawn-features=vulkan_enable_f16_on_nvidia']);
  return dawnInstance;
}

function describeAdapter(adapter: GPUAdapter, implementation: string): string {
  const info = adapter.info;
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ');
  return `${name || 'unknown adapter'} [${implementation}]`;
}

/** Limits the engine raises from the defaults when the adapter allows more. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export async function requestGpu(options: GpuOptions = {}): Promise<Gpu> {
  const backend = options.backend ?? 'auto';
  if (options.maxMemoryBytes !== undefined && !(options.maxMemoryBytes > 0)) {
    throw new RangeError(`maxMemoryBytes must be a positive number of bytes, got ${options.maxMemoryBytes}`);
  }
  const useDawn = backend === 'dawn' || (backend === 'auto' && isNode);
  if (!useDawn && !g.navigator?.gpu) {
    throw new GpuUnavailableError(
      isNode ? "Node has no built-in WebGPU: use backend 'dawn'." : `This runtime has no navigator.gpu. ${NO_ADAPTER_HELP}`,
    );
  }
  await offerSoftwareDriver(options.softwareDriverDir);
  const gpu: GPU = useDawn ? await dawnGpu() : g.navigator.gpu;
  const implementation = useDawn ? 'dawn' : isDeno ? 'deno-wgpu' : 'browser';
  const adapterOptions: GPURequestAdapterOptions = { powerPreference: options.powerPreference ?? 'high-performance' };
  // Dawn prints its limit clamps while it enumerates adapters, inside this call.
  const { value: adapterRequest, notes: adapterNotes } = useDawn
    ? await withDawnNotesHeldBack(() => gpu.requestAdapter(adapterOptions))
    : { value: gpu.requestAdapter(adapterOptions), notes: [] };
  const adapter = await adapterRequest;
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER_HELP);

  const requiredFeatures: GPUFeatureName[] = [];
  // subgroups: kernels that pass values between invocations by subgroup shuffles.
  for (const f of ['timestamp-query', 'shader-f16', 'subgroups'] as GPUFeatureName[]) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'ddim-webgpu' });
  } catch (e) {
    throw new GpuUnavailableError(`The adapter ${describeAdapter(adapter, implementation)} refused a device: ${(e as Error).message}`);
  }
  const uncapturedErrors: string[] = [];
  device.addEventListener('uncapturederror', (event) => {
    uncapturedErrors.push((event as GPUUncapturedErrorEvent).error.message);
  });
  const lost = device.lost.then((info) => `GPU device lost (${info.reason}): ${info.message}`);
  const softwareDawn = useDawn && isSoftwareAdapter(adapter);
  if (softwareDawn) spaceDawnTicks(device, options.softwarePollMs ?? 1);
  const compileHelper = async (): Promise<GPUDevice | undefined> => {
    const second = await gpu.requestAdapter(adapterOptions);
    if (!second || describeAdapter(second, implementation) !== describeAdapter(adapter, implementation)) return undefined;
    const helper = await second.requestDevice({ requiredFeatures, requiredLimits, label: 'ddim-webgpu compile helper' });
    spaceDawnTicks(helper, options.softwarePollMs ?? 1);
    return helper;
  };
  return {
    device,
    adapter,
    adapterName: describeAdapter(adapter, implementation),
    implementation,
    hasTimestamps: device.features.has('timestamp-query'),
    uncapturedErrors,
    adapterNotes,
    lost,
    instance: gpu,
    maxMemoryBytes: options.maxMemoryBytes,
    compileHelper: softwareDawn ? compileHelper : undefined,
  };
}
