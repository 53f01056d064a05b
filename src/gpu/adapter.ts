/**
 * Choices that depend on the adapter, made where the device is known (the ops only describe
 * what each kernel family computes).
 */
import type { ConvKernels } from '../ops/conv2d.ts';

/** What the adapter says of itself, lower case: vendor, architecture, device, description. */
function adapterText(adapter: GPUAdapter): string {
  const info = adapter.info;
  return `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
}

/**
 * Whether the adapter runs on the CPU (a software driver): llvmpipe/lavapipe, SwiftShader, or
 * whatever calls itself a fallback or software adapter. (It does not import the ops, so that the
 * device code can ask it.)
 */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  // adapter.info.isFallbackAdapter is recent; older implementations only describe themselves.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return !!info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/.test(adapterText(adapter));
}

/**
 * The conv kernel family an adapter should use, by what it says of itself: on a software adapter
 * the register kernels, with their weights through uniform windows on llvmpipe (1.2-1.5x there)
 * and from storage elsewhere (SwiftShader ran the windows ~15% slower: docs/perf.md).
 */
export function preferredKernels(adapter: GPUAdapter): ConvKernels {
  if (/llvmpipe|lavapipe/.test(adapterText(adapter))) return 'registers';
  return isSoftwareAdapter(adapter) ? 'registers-storage' : 'tiled';
}
