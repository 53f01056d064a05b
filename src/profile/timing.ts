/** Small timing helpers shared by the profiler and the matmul floor. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Records, at the end of `encoder`, the resolve of queries [0, count) of `querySet` and a copy
 * into a buffer the CPU can map. Call the returned function after submitting the encoder: it
 * resolves to the timestamps (nanoseconds, as BigInt) and frees both buffers.
 */
export function readTimestamps(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  querySet: GPUQuerySet,
  count: number,
): () => Promise<BigUint64Array> {
  const bytes = count * 8;
  const resolve = device.createBuffer({
    label: `${querySet.label}.resolve`,
    size: bytes,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const readback = device.createBuffer({
    label: `${querySet.label}.readback`,
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  encoder.resolveQuerySet(querySet, 0, count, resolve, 0);
  encoder.copyBufferToBuffer(resolve, 0, readback, 0, bytes);
  return async () => {
    try {
      await readback.mapAsync(GPUMapMode.READ);
      return new BigUint64Array(readback.getMappedRange().slice(0));
    } finally {
      resolve.destroy();
      readback.destroy();
    }
  };
}
