/**
 * Choices that depend on the adapter, made where the device is known (the ops only describe
 * what each kernel family computes).
 */
import { type ConvKernels, isTiled } from '../ops/conv2d.ts';

/**
 * The conv kernel family an adapter should use, by what it says of itself: on a software adapter
 * the register kernels, with their weights through uniform windows on llvmpipe (1.2-1.5x there)
 * and from storage elsewhere (SwiftShader ran the windows ~15% slower: docs/perf.md).
 */
export function preferredKernels(adapter: GPUAdapter): ConvKernels {
  // adapter.info.isFallbackAdapter is recent; older implementations only describe themselves.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const name = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  if (/llvmpipe|lavapipe/.test(name)) return 'registers';
  if (info.isFallbackAdapter || /swiftshader|software/.test(name)) return 'registers-storage';
  return 'tiled';
}

/** Whether the adapter runs on the CPU (a software driver): the register kernels' adapters. */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  return !isTiled(preferredKernels(adapter));
}
