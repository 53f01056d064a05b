import type { Graph, Tensor } from '../graph/graph.ts';

/**
 * Each frequency of diffusers' get_timestep_embedding, exp(-ln(max_period) * k / (half - shift)),
 * in turns per timestep (f / 2pi), split as hi + lo with hi rounded to 12 significant bits so
 * that t * hi is exact in f32 for t < 4096 (see timestep_embedding.wgsl). Computed in float64.
 */
export function timestepTurns(halfDim: number, freqShift: number, maxPeriod = 10000): Float32Array {
  const out = new Float32Array(2 * halfDim);
  for (let k = 0; k < halfDim; k++) {
    const turns = Math.exp((-Math.log(maxPeriod) * k) / (halfDim - freqShift)) / (2 * Math.PI);
    const exponent = Math.floor(Math.log2(turns));
    const quantum = 2 ** (exponent - 11);
    const hi = Math.round(turns / quantum) * quantum;
    out[2 * k] = hi;
    out[2 * k + 1] = turns - hi;
  }
  return out;
}

export function timestepEmbedding(
  g: Graph,
  name: string,
  timesteps: Tensor,
  options: { dim: number; flipSinToCos: boolean; freqShift: number },
): Tensor {
  const [n] = timesteps.shape;
  const half = Math.floor(options.dim / 2);
  if (half - options.freqShift === 0) throw new Error(`${name}: freq_shift ${options.freqShift} equals half the embedding size`);
  // f32 at any precision: the phase's exactness rests on these splits (timestep_embedding.wgsl).
  const turns = g.weight(`${name}.turns_per_step`, [half, 2], timestepTurns(half, options.freqShift), 'f32');
  const out = g.intermediate(name, [n, options.dim]);
  g.addNode({
    name,
    kind: 'timestep_embedding',
    shader: 'timestep_embedding',
    inputs: [timesteps, turns],
    outputs: [out],
    params: { batch: n, dim: options.dim, half_dim: half, flip_sin_to_cos: options.flipSinToCos ? 1 : 0 },
    dispatch: { invocations: [options.dim, n] },
    flops: n * options.dim * 4,
    bytes: n * 4 + half * 8 + n * options.dim * 4,
  });
  return out;
}
