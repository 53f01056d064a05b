import { byteSize, bytesPerElement, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import { tokenBlocks } from './token_linear.ts';
import type { WeightArray } from './weights.ts';

/**
 * diffusers' GEGLU (the first layer of a transformer block's feed-forward, `ff.net.0`): the linear
 * projection x [..., in] times weight [2 * out, in] plus bias [2 * out], chunked in two along the
 * features, hidden * gelu(gate) with torch's exact (erf) gelu; the output is [..., out]. One
 * invocation per block of rows (token_linear.ts, TOKEN_BLOCK_ROWS) x 4 outputs computes both halves (token_geglu.wgsl),
 * so the projection is never stored.
 */
export function tokenGeglu(g: Graph, name: string, x: Tensor, weight: WeightArray, bias: WeightArray): Tensor {
  const inFeatures = x.shape[x.shape.length - 1];
  const [projected, wIn] = weight.shape;
  if (weight.shape.length !== 2 || wIn !== inFeatures || projected % 2 !== 0) {
    throw new Error(`${name}: weight [${weight.shape}] is not [2 * out, ${inFeatures}]`);
  }
  if (bias.shape.length !== 1 || bias.shape[0] !== projected) {
    throw new Error(`${name}: bias [${bias.shape}] does not match ${projected} projected features`);
  }
  const outFeatures = projected / 2;
  const rows = elementCount(x.shape) / inFeatures;
  const out = g.intermediate(name, [...x.shape.slice(0, -1), outFeatures]);
  const weightTensor = g.weight(weight.name, weight.shape, () => weight.data, g.weightType);
  const quads = inFeatures % 4 === 0;
  const blocks = tokenBlocks(rows, outFeatures, 4);
  g.addNode({
    name,
    kind: 'token_geglu',
    shader: 'token_geglu',
    // The vec4 views (input4, weight4) only where rows are whole vec4s; else the unused binding.
    inputs: [x, quads ? x : null, weightTensor, quads ? weightTensor : null, g.weight(bias.name, bias.shape, () => bias.data)],
    outputs: [out],
    params: { rows, in_features: inFeatures, out_features: outFeatures, ...blocks.params },
    dispatch: blocks.dispatch,
    flops: 2 * rows * inFeatures * projected + 20 * rows * outFeatures,
    bytes: byteSize(x) + bytesPerElement(g.weightType) * elementCount(weight.shape) + byteSize(out),
  });
  return out;
}
