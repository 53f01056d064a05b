/**
 * A weight as the model files hold it: its PyTorch name, shape and float32 values. The values
 * may be computed on first use (a conversion from f16, a concatenation): graphs are built once
 * per batch size, but weights are read and uploaded once.
 */
export interface WeightArray {
  name: string;
  shape: number[];
  readonly data: Float32Array;
}

/** A weight whose values `compute` makes the first time they are read. */
export function lazyWeight(name: string, shape: number[], compute: () => Float32Array): WeightArray {
  let data: Float32Array | undefined;
  return {
    name,
    shape,
    get data() {
      return data ??= compute();
    },
  };
}

/** The parts one after another, concatenated when the values are first asked for. */
export function concatenated(name: string, parts: WeightArray[], shape: number[]): WeightArray {
  return lazyWeight(name, shape, () => {
    const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
    let offset = 0;
    for (const p of parts) {
      data.set(p.data, offset);
      offset += p.data.length;
    }
    return data;
  });
}
