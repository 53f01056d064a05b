/**
 * Choices that depend on the adapter, made where the device is known (the ops only describe
 * what each kernel family computes).
 */
import type { ConvKernels } from '../ops/conv2d.ts';

/** The conv kernel family an adapter should use, by what it says of itself: registers on a software adapter. */
export function preferredKernels(adapter: GPUAdapter): ConvKernels {
  // adapter.info.isFallbackAdapter is recent; older implementations only describe themselves.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  if (info.isFallbackAdapter) return 'registers';
  const name = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software/.test(name) ? 'registers' : 'tiled';
}
