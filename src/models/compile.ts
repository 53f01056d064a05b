/**
 * What compiling any model's graphs shares: the limits a graph must fit (the device's, or stricter
 * ones asked for), the largest batch that fits them, and each model's weights uploaded once per
 * device and precision, shared by every graph compiled from it.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { CompiledGraph, DeviceWeights, GraphLimitError, type GraphLimits } from '../graph/executor.ts';
import type { Graph } from '../graph/graph.ts';

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
