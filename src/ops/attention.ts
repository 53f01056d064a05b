import { type Graph, type Tensor, byteSize } from '../graph/graph.ts';
import { conv2d } from './conv2d.ts';
import { groupNorm } from './group_norm.ts';
import type { WeightArray } from './weights.ts';

export interface AttentionWeights {
  norm: { weight: WeightArray; bias: WeightArray };
  query: { weight: WeightArray; bias: WeightArray };
  key: { weight: WeightArray; bias: WeightArray };
  value: { weight: WeightArray; bias: WeightArray };
  out: { weight: WeightArray; bias: WeightArray };
}

/**
 * diffusers' spatial self-attention block (Attention with residual_connection, from the old
 * AttentionBlock): GroupNorm, q/k/v projections, softmax(q k^T / sqrt(d)) v per head, output
 * projection, plus the input; divided by rescale_output_factor. Projections over channels of an
 * NCHW tensor are 1x1 convolutions, so the layout never changes.
 */
export function spatialAttention(
  g: Graph, name: string, x: Tensor, w: AttentionWeights,
  options: { heads: number; groups: number; eps: number; rescaleOutputFactor: number },
): Tensor {
  const [n, c, h, wd] = x.shape;
  if (c % options.heads !== 0) throw new Error(`${name}: ${c} channels do not split into ${options.heads} heads`);
  const headDim = c / options.heads;
  const length = h * wd;
  const normed = groupNorm(g, `${name}.group_norm`, x, w.norm.weight, w.norm.bias, { groups: options.groups, eps: options.eps, silu: false });
  const q = conv2d(g, `${name}.to_q`, normed, w.query.weight, w.query.bias);
  const k = conv2d(g, `${name}.to_k`, normed, w.key.weight, w.key.bias);
  const v = conv2d(g, `${name}.to_v`, normed, w.value.weight, w.value.bias);
  const probs = g.intermediate(`${name}.probs`, [n, options.heads, length, length]);
  g.addNode({
    name: `${name}.probs`,
    kind: 'attention_probs',
    shader: 'attention_probs',
    inputs: [q, k],
    outputs: [probs],
    params: { batch: n, heads: options.heads, head_dim: headDim, length, scale: 1 / Math.sqrt(headDim) },
    workgroups: [length, options.heads, n],
    flops: n * options.heads * length * length * (2 * headDim + 5),
    bytes: byteSize(q) + byteSize(k) + 3 * byteSize(probs),
  });
  const attended = g.intermediate(`${name}.attended`, x.shape);
  g.addNode({
    name: `${name}.attended`,
    kind: 'attention_apply',
    shader: 'attention_apply',
    inputs: [probs, v],
    outputs: [attended],
    params: { batch: n, heads: options.heads, head_dim: headDim, length },
    workgroups: [Math.ceil(length / 64), c, n],
    flops: 2 * n * c * length * length,
    bytes: byteSize(probs) + byteSize(v) + byteSize(attended),
  });
  return conv2d(g, name, attended, w.out.weight, w.out.bias, { residual: x, outputScale: 1 / options.rescaleOutputFactor });
}
