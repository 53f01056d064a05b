/**
 * Seeded, counter-based normal noise: the CPU twin of `shaders/sampler/noise.wgsl`.
 *
 * Philox4x32-10 (Salmon et al. 2011, Random123) with key = the 64-bit seed (low word, high
 * word) and counter = (⌊i / 4⌋, image, stream, 0) for element i, so any element can be made alone,
 * in any order, on the CPU or the GPU. Each Philox output gives four uniforms u = (w >> 9 + ½)·2⁻²³:
 * exactly representable in float32, never 0 or 1, so the log below is always finite (normals
 * are therefore bounded by √(2·ln 2²⁴) ≈ 5.77). Box–Muller turns (u0, u1) into elements 0 and 1
 * of the block, (u2, u3) into elements 2 and 3:
 *   r = √(−2 ln u_even),  φ = π·(2·u_odd − 1) ∈ (−π, π),  z_even = r·cos φ,  z_odd = r·sin φ.
 * The uniforms and φ (rounded to float32 as the shader rounds it) are bit-identical on both
 * sides; the normals differ only by the GPU's log/sqrt/cos/sin, which the shader keeps accurate
 * relative to r even where u is near 1.
 */

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** The high 32 bits of the 64-bit product of two u32 (the low ones are Math.imul). */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lh = aLo * bHi;
  const hl = aHi * bLo;
  const carry = (((aLo * bLo) >>> 16) + (lh & 0xffff) + (hl & 0xffff)) >>> 16;
  return (aHi * bHi + (lh >>> 16) + (hl >>> 16) + carry) >>> 0;
}

/**
 * Philox4x32 with 10 rounds on one counter; writes the 4 output words into `out`.
 * Kept allocation-free because it runs once per four normals.
 */
export function philox4x32_10(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): Uint32Array {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulHi(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulHi(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

/** Philox word → uniform in (0, 1), exact in float32 (the shader computes the same value). */
export function wordToUniform(word: number): number {
  return ((word >>> 9) + 0.5) / 8388608;
}

/** Splits a seed in [0, 2^53) into the two key words the shader's params take. */
export function seedWords(seed: number): { seedLo: number; seedHi: number } {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`the noise seed must be an integer from 0 to 2^53 − 1, got ${seed}`);
  }
  return { seedLo: seed % 0x100000000, seedHi: Math.floor(seed / 0x100000000) };
}

/** The shader's angle is f32(π)·(2u − 1) rounded to f32; the CPU makes the identical value. */
const PI_F32 = Math.fround(Math.PI);

/** Largest count: the block index is one 32-bit counter word. */
const MAX_NORMALS = 4 * 0x100000000;

/**
 * `count` standard normals of one image for (seed, stream): element i is the same whatever
 * `count` is. `image` is the counter's second word (the shader's first_image + i / per_image).
 */
export function philoxNormals(seed: number, stream: number, count: number, image = 0): Float32Array {
  const { seedLo, seedHi } = seedWords(seed);
  if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) {
    throw new RangeError(`the noise stream must be a u32, got ${stream}`);
  }
  if (!Number.isInteger(count) || count < 0 || count > MAX_NORMALS) {
    throw new RangeError(`the noise count must be an integer from 0 to 2^34, got ${count}`);
  }
  const out = new Float32Array(count);
  const words = new Uint32Array(4);
  for (let block = 0; block * 4 < count; block++) {
    philox4x32_10(block, image, stream, 0, seedLo, seedHi, words);
    for (let pair = 0; pair < 2; pair++) {
      const radius = Math.sqrt(-2 * Math.log(wordToUniform(words[2 * pair])));
      const angle = Math.fround(PI_F32 * (2 * wordToUniform(words[2 * pair + 1]) - 1));
      const i = block * 4 + pair * 2;
      if (i < count) out[i] = radius * Math.cos(angle);
      if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
    }
  }
  return out;
}
