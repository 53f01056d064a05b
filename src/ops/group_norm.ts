import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

export function groupNorm(
  g: Graph,
  name: string,
  x: Tensor,
  gamma: WeightArray,
  beta: WeightArray,
  options: { groups: number; eps: number; silu: boolean },
): Tensor {
  const [n, c, h, w] = x.shape;
  if (c % options.groups !== 0) throw new Error(`${name}: ${c} channels are not divisible into ${options.groups} groups`);
  const out = g.intermediate(name, x.shape);
  g.addNode({
    name,
    kind: options.silu ? 'group_norm_silu' : 'group_norm',
    shader: 'group_norm',
    // The input twice: as f32 and as vec4 (group_norm.wgsl reads rows a multiple of 4 long as vec4s).
    inputs: [x, x, g.weight(gamma.name, gamma.shape, () => gamma.data), g.weight(beta.name, beta.shape, () => beta.data)],
    outputs: [out],
    params: {
      channels: c,
      groups: options.groups,
      spatial: h * w,
      items: n * options.groups,
      eps: options.eps,
      silu: options.silu ? 1 : 0,
    },
    // One invocation per (image, group).
    dispatch: { invocations: [n * options.groups] },
    flops: n * c * h * w * (options.silu ? 12 : 8),
    bytes: 2 * byteSize(x) + byteSize(out),
  });
  return out;
}
