/**
 * GPU memory: what the engine holds on each device, and the check before a graph allocates more.
 *
 * WebGPU tells a page no total memory size, only per-buffer limits (maxBufferSize, checked with
 * every tensor in CompiledGraph.checkLimits). So a model is held to what is known: a budget the
 * user states (`requestGpu({ maxMemoryBytes })`, `--gpu-memory`), checked against the bytes the
 * engine's graphs and weights already hold plus what the next graph plans, before it uploads
 * anything; and, without a budget or beyond it, the driver's own out-of-memory answer, caught in
 * an error scope. Either way the caller gets a ModelTooLargeError naming the numbers, never a
 * device loss.
 */
import type { Gpu } from './device.ts';

/** A model (or one of its graphs) that needs more GPU memory than the device or the budget allows. */
export class ModelTooLargeError extends Error {
  override name = 'ModelTooLargeError';
}

/** A buffer mapped at creation that the device could not allocate (WebGPU throws a RangeError for it). */
export class GpuAllocationError extends Error {
  override name = 'GpuAllocationError';
}

/** What the engine's graphs hold on one device: all buffers, and among them the weights stored as f32. */
export interface HeldMemory {
  bytes: number;
  f32WeightBytes: number;
}

const heldOn = new WeakMap<GPUDevice, HeldMemory>();

/** The bytes the engine's weights and graph buffers hold on `device` now. */
export function heldMemory(device: GPUDevice): HeldMemory {
  let held = heldOn.get(device);
  if (!held) heldOn.set(device, held = { bytes: 0, f32WeightBytes: 0 });
  return held;
}

/** Counts buffers made (positive) or destroyed (negative) on `device`. */
export function countHeld(device: GPUDevice, bytes: number, f32WeightBytes = 0): void {
  const held = heldMemory(device);
  held.bytes += bytes;
  held.f32WeightBytes += f32WeightBytes;
}

/** What one graph is about to allocate. */
export interface MemoryNeed {
  /** The graph's label ('unet', 'text_encoder', 'vae.decoder'). */
  label: string;
  /** Weights not yet on the device (a model's other graphs may have uploaded the rest). */
  weightBytes: number;
  /** Of those, the ones stored as f32. */
  f32WeightBytes: number;
  /** The graph's own buffers: planned activations, inputs and outputs. */
  activationBytes: number;
}

const GIB = 2 ** 30;

/** Bytes as GiB (MiB below one GiB), for messages. */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(2)} GiB`;
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** What the numbers are: this graph's need, and what the engine already holds beside it. */
function describeNeed(need: MemoryNeed, held: HeldMemory): string {
  const total = need.weightBytes + need.activationBytes + held.bytes;
  return `${need.label} needs ${formatBytes(total)} of GPU memory (weights ${formatBytes(need.weightBytes)}, activations ${
    formatBytes(need.activationBytes)
  }${held.bytes > 0 ? `, beside ${formatBytes(held.bytes)} the engine already holds on the device` : ''})`;
}

/**
 * Where weights stored as f32 are a good part of what is needed, precision f16 halves them on any
 * adapter: as f16 where it has shader-f16, else as f16-packed (f16 pairs in u32 words).
 */
function precisionRemedy(gpu: Gpu, need: MemoryNeed, held: HeldMemory): string {
  const f32 = need.f32WeightBytes + held.f32WeightBytes;
  const total = need.weightBytes + need.activationBytes + held.bytes;
  if (f32 < total / 4) return '';
  const how = gpu.device.features.has('shader-f16') ? '' : ', run as f16-packed on this adapter (no shader-f16),';
  return `; precision 'f16' (--precision f16)${how} stores the weights in half the memory (saves about ${formatBytes(f32 / 2)})`;
}

/** Refuses, before anything is allocated, a graph that would take the engine past `gpu.maxMemoryBytes`. */
export function checkMemoryBudget(gpu: Gpu, need: MemoryNeed, held: HeldMemory = heldMemory(gpu.device)): void {
  const budget = gpu.maxMemoryBytes;
  if (budget === undefined) return;
  if (held.bytes + need.weightBytes + need.activationBytes <= budget) return;
  throw new ModelTooLargeError(
    `${describeNeed(need, held)}; the GPU memory budget for ${gpu.adapterName} (--gpu-memory) allows ${formatBytes(budget)}${
      precisionRemedy(gpu, need, held)
    }`,
  );
}

/**
 * The driver's out-of-memory answer while `need` was allocated, as a ModelTooLargeError with the
 * numbers; `held` is what the engine held before that allocation began.
 */
export function outOfMemoryError(gpu: Gpu, need: MemoryNeed, held: HeldMemory, driverMessage: string): ModelTooLargeError {
  const detail = driverMessage ? ` (${driverMessage.split('\n')[0]})` : '';
  return new ModelTooLargeError(
    `${describeNeed(need, held)}; ${gpu.adapterName} ran out of memory allocating it${detail}${precisionRemedy(gpu, need, held)}`,
  );
}

/**
 * Sizes as users write them: bytes, or a number with K, M, G, T (powers of 1024, with or without
 * "iB"/"B"): '6G', '512MiB', '1.5 GB'. Undefined for anything else.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?|B)?\s*$/i.exec(text);
  if (!match) return undefined;
  const power = match[2] ? 'KMGT'.indexOf(match[2].toUpperCase()) + 1 : 0;
  const bytes = Math.round(Number(match[1]) * 1024 ** power);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}
