/**
 * What compiling any model's graphs shares: the limits a graph must fit (the device's, or stricter
 * ones asked for), the largest batch that fits them, and each model's weights uploaded once per
 * device and precision, shared by every graph compiled from it.
 */
import type { Gpu } from '../gpu/device.ts';
import { type Precision, PRECISIONS } from '../gpu/shader_source.ts';
import { type ConvKernels, kernelsMissingFeatures, preferredKernels } from '../ops/conv2d.ts';
import { CompiledGraph, DeviceWeights, GraphLimitError, type GraphLimits } from '../graph/executor.ts';
import type { Graph } from '../graph/graph.ts';

/** Raised for what the adapter lacks a feature for: f16 without shader-f16, subgroup kernels without subgroups. */
export class UnsupportedFeatureError extends Error {
  override name = 'UnsupportedFeatureError';
}

/** A precision the engine does not know. */
export class UnsupportedPrecisionError extends UnsupportedFeatureError {
  override name = 'UnsupportedPrecisionError';
}

/**
 * `precision` (f32 by default) as this adapter runs it: 'f16' where the adapter has shader-f16,
 * else 'f16-packed' (the same f16 weights, computed with f32 activations, on any adapter).
 */
export function devicePrecision(gpu: Gpu, precision: Precision = 'f32'): Precision {
  if (!PRECISIONS.includes(precision)) {
    throw new UnsupportedPrecisionError(`precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  }
  return precision === 'f16' && !gpu.device.features.has('shader-f16') ? 'f16-packed' : precision;
}

/**
 * The kernel family asked for, or the adapter's own (register-blocked kernels on software
 * adapters, workgroup tiles on GPUs), refused where the adapter lacks a feature it needs.
 */
export function deviceKernels(gpu: Gpu, kernels?: ConvKernels): ConvKernels {
  const chosen = kernels ?? preferredKernels(gpu.adapter);
  const missing = kernelsMissingFeatures(chosen, gpu.device);
  if (missing.length) {
    // Only the subgroup family needs a feature; tiled-wide is the same tiles without it.
    throw new UnsupportedFeatureError(
      `kernels '${chosen}' need the adapter feature ${
        missing.map((f) => `'${f}'`).join(', ')
      }, and ${gpu.adapterName} has none: use 'tiled-wide'`,
    );
  }
  return chosen;
}

/**
 * Calls that overlap in time, run one after another in the order they were made, each on its own
 * (a failed one does not stop the next).
 */
export class CallQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => {});
    return run;
  }
}

/** The device's limits, lowered where `stricter` asks (to leave headroom, or to test a split). */
export function graphLimits(gpu: Gpu, stricter: Partial<GraphLimits> = {}): GraphLimits {
  const limits = gpu.device.limits;
  return {
    maxStorageBufferBindingSize: Math.min(limits.maxStorageBufferBindingSize, stricter.maxStorageBufferBindingSize ?? Infinity),
    maxBufferSize: Math.min(limits.maxBufferSize, stricter.maxBufferSize ?? Infinity),
    maxComputeWorkgroupsPerDimension: Math.min(
      limits.maxComputeWorkgroupsPerDimension,
      stricter.maxComputeWorkgroupsPerDimension ?? Infinity,
    ),
  };
}

export function fitsLimits(graph: Graph, limits: GraphLimits): boolean {
  try {
    CompiledGraph.checkLimits(graph, limits);
    return true;
  } catch (error) {
    if (error instanceof GraphLimitError) return false;
    throw error;
  }
}

/**
 * The graph of `batch` images, or of the largest batch whose tensors and dispatches fit `limits`
 * (callers run more passes; an image does not depend on its batch). A single image that does not
 * fit is refused with a GraphLimitError that gives the numbers.
 */
export function largestFittingBatch(build: (batch: number) => Graph, batch: number, limits: GraphLimits): { graph: Graph; batch: number } {
  const graph = build(batch);
  if (fitsLimits(graph, limits)) return { graph, batch };
  // Bisection: what a graph needs grows with its batch.
  let low = 0;
  let high = batch;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (fitsLimits(build(middle), limits)) low = middle;
    else high = middle;
  }
  if (low === 0) CompiledGraph.checkLimits(build(1), limits); // throws, naming what a single image needs
  return { graph: build(low), batch: low };
}

/** Each model's weights on each device at each precision. */
const deviceWeights = new WeakMap<object, Map<GPUDevice, Map<Precision, DeviceWeights>>>();

/** `model`'s weights on `device` at `precision`, shared by every graph compiled from that model there. */
export function weightsOn(model: object, device: GPUDevice, precision: Precision): DeviceWeights {
  let perModel = deviceWeights.get(model);
  if (!perModel) deviceWeights.set(model, perModel = new Map());
  let perDevice = perModel.get(device);
  if (!perDevice) perModel.set(device, perDevice = new Map());
  let weights = perDevice.get(precision);
  if (!weights) {
    const forDevice = perDevice;
    weights = new DeviceWeights(device, () => forDevice.delete(precision));
    perDevice.set(precision, weights);
  }
  return weights;
}
