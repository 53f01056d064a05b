/** Relative L2 error of a whole tensor and its worst element: no imports, so the browser test page uses it too. */
export interface Comparison {
  relL2: number;
  maxAbs: number;
  worstIndex: number;
}

export function compare(actual: Float32Array, expected: Float32Array): Comparison {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != reference length ${expected.length}`);
  let diff2 = 0, ref2 = 0, maxAbs = 0, worstIndex = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = actual[i] - expected[i];
    diff2 += d * d;
    ref2 += expected[i] * expected[i];
    if (!(Math.abs(d) <= maxAbs)) {
      maxAbs = Math.abs(d);
      worstIndex = i;
    }
  }
  return { relL2: Math.sqrt(diff2 / Math.max(ref2, 1e-30)), maxAbs, worstIndex };
}
