/**
 * IEEE 754 half precision (binary16) and bfloat16 conversions.
 *
 * `float16ToFloat32(bits)` decodes the 16-bit pattern exactly (every half is a float);
 * `float32ToFloat16(x)` rounds to nearest, ties to even, like hardware conversions do, so
 * values past the half range (65504 plus half an ulp) become ±Infinity and NaN stays NaN.
 */

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The number a binary16 bit pattern (0..65535) encodes. */
export function float16ToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** The binary16 bit pattern nearest to x (ties to even). */
export function float32ToFloat16(x: number): number {
  scratch[0] = x;
  const bits = scratchBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the full significand, implicit bit included, into place.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShift(significand, shift);
  }
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

/** value >> shift, rounded to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const remainder = value - kept * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (remainder > half || (remainder === half && (kept & 1) === 1)) return kept + 1;
  return kept;
}

let float16Table: Float32Array | undefined;

/** Decodes binary16 patterns to float32 through a 64K lookup table (built on first use). */
export function float16ArrayToFloat32(halves: Uint16Array): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) float16Table[h] = float16ToFloat32(h);
  }
  const table = float16Table;
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  return out;
}

/** Encodes float32 values as binary16 patterns, each rounded to nearest (ties to even). */
export function float32ArrayToFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    const exponent = (b >>> 23) & 0xff;
    // Normal halves (2^-14 <= |x| < 2^16) by bit arithmetic, several times faster (a model's
    // weights are nearly all of them); zeros, subnormals, overflow and NaN by the general path.
    if (exponent >= 113 && exponent <= 142) {
      const mantissa = b & 0x7fffff;
      // Ties to even; a carry out of the mantissa bumps the exponent (2^16 and up round to Infinity).
      out[i] = ((b >>> 16) & 0x8000) | (((exponent - 112) << 10) + ((mantissa + 0xfff + ((mantissa >>> 13) & 1)) >>> 13));
    } else {
      out[i] = float32ToFloat16(values[i]);
    }
  }
  return out;
}

/** Decodes bfloat16 patterns: they are the high half of a float32. */
export function bfloat16ArrayToFloat32(halves: Uint16Array): Float32Array {
  const bits = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return new Float32Array(bits.buffer);
}
