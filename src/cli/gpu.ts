/**
 * The GPU a command runs on: the runtime's, or Dawn's where that is faster on this adapter.
 */
import { isSoftwareAdapter } from '../gpu/adapter.ts';
import { type Backend, type Gpu, requestGpu } from '../gpu/device.ts';
import type { Precision } from '../gpu/shader_source.ts';

/**
 * Deno's own WebGPU (wgpu) on a software adapter ran emoji32 ~5x slower than Dawn on the same
 * CPU (docs/perf.md, issue 11), so with --backend auto a software adapter there is swapped for
 * Dawn's (npm:webgpu) when that loads; anything else keeps the first adapter.
 */
export async function fastestGpu(
  backend: Backend,
  precision: Precision,
  maxMemoryBytes?: number,
  verbose?: (text: string) => void,
): Promise<Gpu> {
  const gpu = await chosenGpu(backend, precision, maxMemoryBytes);
  verbose?.(adapterReport(gpu));
  return gpu;
}

async function chosenGpu(backend: Backend, precision: Precision, maxMemoryBytes?: number): Promise<Gpu> {
  const gpu = await requestGpu({ backend, maxMemoryBytes });
  // Deno's wgpu has no shader-f16 (Dawn has, on lavapipe too): f16 is asked of Dawn there.
  const wantsDawn = isSoftwareAdapter(gpu.adapter) || (precision === 'f16' && !gpu.device.features.has('shader-f16'));
  if (backend !== 'auto' || gpu.implementation !== 'deno-wgpu' || !wantsDawn) return gpu;
  try {
    const dawn = await requestGpu({ backend: 'dawn', maxMemoryBytes });
    gpu.device.destroy();
    return dawn;
  } catch {
    return gpu;
  }
}

/**
 * --verbose: the adapter, the limits that decide what fits, and what its driver printed while it
 * was found and the engine kept off stderr (Dawn's notes on lowered limits, src/gpu/dawn_stderr.ts).
 */
export function adapterReport(gpu: Gpu): string {
  const limits = gpu.device.limits;
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
  const lines = [
    `verbose: adapter ${gpu.adapterName}, shader-f16 ${gpu.device.features.has('shader-f16') ? 'yes' : 'no'}, timestamps ${
      gpu.hasTimestamps ? 'yes' : 'no'
    }`,
    `verbose: limits: storage binding ${mib(limits.maxStorageBufferBindingSize)}, buffer ${
      mib(limits.maxBufferSize)
    }, ${limits.maxStorageBuffersPerShaderStage} storage buffers per stage, workgroup memory ${limits.maxComputeWorkgroupStorageSize} bytes`,
    ...gpu.adapterNotes.map((note) => `verbose: the driver said while the adapter was found: ${note}`),
  ];
  return `${lines.join('\n')}\n`;
}
