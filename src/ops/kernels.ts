/**
 * Kernel families, chosen per adapter. The best kernel shape differs by adapter: on a software
 * driver (llvmpipe) each workgroup runs as a loop on one CPU core and barriers are expensive, so
 * register-blocked kernels with no workgroup memory win (conv2d.wgsl, conv2d_wide.wgsl); on a
 * real GPU, workgroup-memory tiles shared by many invocations win (conv2d_tiled.wgsl).
 */
import type { Gpu } from '../gpu/device.ts';
import { CompiledGraph } from '../graph/executor.ts';
import { Graph } from '../graph/graph.ts';
import { conv2d } from './conv2d.ts';

export type ConvKernels = 'registers' | 'tiled';

export const KERNEL_FAMILIES: readonly ConvKernels[] = ['registers', 'tiled'];

/** The family an adapter should use by what it says of itself: registers on a software adapter. */
export function preferredKernels(adapter: GPUAdapter): ConvKernels {
  // adapter.info.isFallbackAdapter is recent; older implementations only describe themselves.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  if (info.isFallbackAdapter) return 'registers';
  const name = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software/.test(name) ? 'registers' : 'tiled';
}

/**
 * The family that runs a typical UNet convolution (3x3, 128 -> 128 channels, 32x32) faster on
 * this device, by timing both (a few milliseconds on a GPU; on a software adapter, which
 * `preferredKernels` recognises, it answers without measuring, since the tiled kernel there is
 * several times slower and would take seconds).
 */
export async function measureKernels(gpu: Gpu): Promise<ConvKernels> {
  const guess = preferredKernels(gpu.adapter);
  if (guess === 'registers') return guess;
  const channels = 128, size = 32;
  const weight = { name: 'w', shape: [channels, channels, 3, 3], data: new Float32Array(channels * channels * 9).fill(0.01) };
  const bias = { name: 'b', shape: [channels], data: new Float32Array(channels) };
  const seconds: Record<string, number> = {};
  for (const kernels of KERNEL_FAMILIES) {
    const g = new Graph();
    const x = g.input('x', [1, channels, size, size]);
    g.markOutput(conv2d(g, 'conv', x, weight, bias, { padding: [1, 1, 1, 1], kernels }));
    const compiled = await CompiledGraph.compile(gpu, g, `measure-${kernels}`);
    try {
      await compiled.run(); // compiles the pipeline
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const start = performance.now();
        const encoder = gpu.device.createCommandEncoder({ label: `measure-${kernels}` });
        for (let r = 0; r < 10; r++) compiled.record(encoder);
        gpu.device.queue.submit([encoder.finish()]);
        await gpu.device.queue.onSubmittedWorkDone();
        best = Math.min(best, performance.now() - start);
      }
      seconds[kernels] = best;
    } finally {
      compiled.destroy();
    }
  }
  return seconds.tiled <= seconds.registers ? 'tiled' : 'registers';
}
