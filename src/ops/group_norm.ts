import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

export function groupNorm(
  g: Graph,
  name: string,
  x: Tensor,
  gamma: WeightArray,
  beta: WeightArray,
  options: { groups: number; eps: number; silu: boolean; concat?: Tensor },
): Tensor {
  const [n, ca, h, w] = x.shape;
  // The input's channels may continue in a second tensor (a skip concatenation, read in place).
  const b = options.concat;
  if (b && (b.shape[0] !== n || b.shape[2] !== h || b.shape[3] !== w)) {
    throw new Error(`${name}: cannot read [${x.shape}] and [${b.shape}] as one concatenated input`);
  }
  const c = ca + (b ? b.shape[1] : 0);
  if (c % options.groups !== 0) throw new Error(`${name}: ${c} channels are not divisible into ${options.groups} groups`);
  const out = g.intermediate(name, [n, c, h, w]);
  g.addNode({
    name,
    kind: options.silu ? 'group_norm_silu' : 'group_norm',
    shader: 'group_norm',
    // Each input twice: as f32 and as vec4 (group_norm.wgsl reads rows a multiple of 4 long as vec4s).
    inputs: [
      x,
      x,
      b ?? null,
      b ?? null,
      g.weight(gamma.name, gamma.shape, () => gamma.data),
      g.weight(beta.name, beta.shape, () => beta.data),
    ],
    outputs: [out],
    params: {
      channels: c,
      groups: options.groups,
      spatial: h * w,
      items: n * options.groups,
      eps: options.eps,
      silu: options.silu ? 1 : 0,
      channels_a: ca,
    },
    // One invocation per (image, group).
    dispatch: { invocations: [n * options.groups] },
    flops: n * c * h * w * (options.silu ? 12 : 8),
    bytes: 3 * byteSize(out),
  });
  return out;
}
