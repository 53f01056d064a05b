/** Golden comparisons: relative L2 error for whole tensors, and the worst element on failure. */
import { readFileSync } from 'node:fs';
import { parseSafetensors, type SafetensorsFile, toFloat32, toInt32 } from '../../src/io/safetensors.ts';
import { compare, type Comparison } from './compare_values.ts';

export { compare, type Comparison };

/** Asserts relL2 <= tolerance, always printing the measured error. */
export function expectClose(label: string, actual: Float32Array, expected: Float32Array, tolerance: number): Comparison {
  const c = compare(actual, expected);
  const ok = c.relL2 <= tolerance;
  console.log(
    `    ${ok ? 'ok  ' : 'FAIL'} ${label.padEnd(40)} rel L2 ${c.relL2.toExponential(2)} (limit ${tolerance.toExponential(0)})  max |diff| ${
      c.maxAbs.toExponential(2)
    }`,
  );
  if (!ok || Number.isNaN(c.relL2)) {
    throw new Error(
      `${label}: rel L2 error ${c.relL2.toExponential(3)} > ${tolerance}; worst element ${c.worstIndex}: ${
        actual[c.worstIndex]
      } vs reference ${expected[c.worstIndex]}`,
    );
  }
  return c;
}

export function readGolden(file: string): SafetensorsFile {
  return parseSafetensors(new Uint8Array(readFileSync(`../shared/golden/${file}`)));
}

export function goldenF32(golden: SafetensorsFile, name: string): Float32Array {
  const entry = golden.tensors.get(name);
  if (!entry) throw new Error(`golden tensor ${name} is missing`);
  return toFloat32(entry);
}

export function goldenI32(golden: SafetensorsFile, name: string): Int32Array {
  const entry = golden.tensors.get(name);
  if (!entry) throw new Error(`golden tensor ${name} is missing`);
  return toInt32(entry);
}
