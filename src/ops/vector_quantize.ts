import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

/**
 * VectorQuantizer: z [N, C, H, W] with each position replaced by its nearest row of `codebook`
 * [codes, C], and the chosen rows' indices [N, H, W] (i32).
 */
export function vectorQuantize(g: Graph, name: string, z: Tensor, codebook: WeightArray): { quantized: Tensor; indices: Tensor } {
  const [n, c, h, w] = z.shape;
  const [codes, width] = codebook.shape;
  if (width !== c) throw new Error(`${name}: codebook vectors have ${width} values, the latents ${c} channels`);
  const quantized = g.intermediate(name, [n, c, h, w]);
  const indices = g.intermediate(`${name}.indices`, [n, h, w], 'i32');
  // The codebook stays f32 at any precision: the nearest code must not depend on rounding.
  const table = g.weight(codebook.name, codebook.shape, () => codebook.data, 'f32');
  g.addNode({
    name,
    kind: 'vector_quantize',
    shader: 'vector_quantize',
    inputs: [z, table],
    outputs: [quantized, indices],
    params: { batch: n, channels: c, spatial: h * w, codes },
    dispatch: { invocations: [n * h * w], flat: true },
    flops: 3 * n * h * w * codes * c,
    bytes: 2 * byteSize(z) + byteSize(indices) + 4 * codes * c,
  });
  return { quantized, indices };
}
