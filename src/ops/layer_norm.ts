import { byteSize, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

/**
 * torch's LayerNorm over the last dimension of a token-major tensor ([batch, tokens, dim], or any
 * shape whose last dimension is the features): one invocation per row (layer_norm.wgsl).
 */
export function layerNorm(g: Graph, name: string, x: Tensor, gamma: WeightArray, beta: WeightArray, options: { eps: number }): Tensor {
  const dim = x.shape[x.shape.length - 1];
  for (const w of [gamma, beta]) {
    if (w.shape.length !== 1 || w.shape[0] !== dim) throw new Error(`${name}: ${w.name} is [${w.shape}], the input has ${dim} features`);
  }
  const rows = elementCount(x.shape) / dim;
  const out = g.intermediate(name, x.shape);
  g.addNode({
    name,
    kind: 'layer_norm',
    shader: 'layer_norm',
    inputs: [x, g.weight(gamma.name, gamma.shape, () => gamma.data), g.weight(beta.name, beta.shape, () => beta.data)],
    outputs: [out],
    params: { rows, dim, eps: options.eps },
    dispatch: { invocations: [rows], flat: true },
    flops: 8 * rows * dim,
    bytes: 3 * byteSize(x),
  });
  return out;
}
