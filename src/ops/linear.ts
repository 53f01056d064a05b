import { byteSize, bytesPerElement, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

export function linear(
  g: Graph,
  name: string,
  x: Tensor,
  weight: WeightArray,
  bias: WeightArray,
  options: { siluInput?: boolean; siluOutput?: boolean } = {},
): Tensor {
  const [n, inFeatures] = x.shape;
  const [outFeatures, wIn] = weight.shape;
  if (wIn !== inFeatures) throw new Error(`${name}: weight expects ${wIn} input features, the input has ${inFeatures}`);
  const out = g.intermediate(name, [n, outFeatures]);
  g.addNode({
    name,
    kind: 'linear',
    shader: 'linear',
    inputs: [x, g.weight(weight.name, weight.shape, () => weight.data, g.weightType), g.weight(bias.name, bias.shape, () => bias.data)],
    outputs: [out],
    params: {
      batch: n,
      in_features: inFeatures,
      out_features: outFeatures,
      silu_input: options.siluInput ? 1 : 0,
      silu_output: options.siluOutput ? 1 : 0,
    },
    // One invocation per output feature of each image.
    dispatch: { invocations: [outFeatures, n] },
    flops: 2 * n * inFeatures * outFeatures,
    bytes: byteSize(x) + bytesPerElement(g.weightType) * elementCount(weight.shape) + byteSize(out),
  });
  return out;
}
