import type { Graph, Tensor } from '../graph/graph.ts';
import { conv2d, type ConvKernels } from './conv2d.ts';
import { softmaxRows } from './softmax.ts';
import { stridedGemm } from './strided_gemm.ts';
import { concatenated, type WeightArray } from './weights.ts';

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
 * NCHW tensor are 1x1 convolutions, so the layout never changes: q, k and v are one convolution
 * with 3C output channels, and the two products read their heads as strided views of it.
 */
export function spatialAttention(
  g: Graph,
  name: string,
  x: Tensor,
  w: AttentionWeights,
  options: { heads: number; groups: number; eps: number; rescaleOutputFactor: number; kernels?: ConvKernels },
): Tensor {
  const [n, c, h, wd] = x.shape;
  const heads = options.heads;
  if (c % heads !== 0) throw new Error(`${name}: ${c} channels do not split into ${heads} heads`);
  const d = c / heads;
  const L = h * wd;
  const projections = [w.query, w.key, w.value];
  const qkv = conv2d(
    g,
    `${name}.to_qkv`,
    x,
    concatenated(`${name}.to_qkv.weight`, projections.map((p) => p.weight), [3 * c, c]),
    concatenated(`${name}.to_qkv.bias`, projections.map((p) => p.bias), [3 * c]),
    {
      kernels: options.kernels,
      groupNorm: {
        name: `${name}.group_norm`,
        gamma: w.norm.weight,
        beta: w.norm.bias,
        groups: options.groups,
        eps: options.eps,
        silu: false,
      },
    },
  );
  // Head `hd` of image `b`: channel rows (b * 3C + part * C + hd * D + e) * L of qkv.
  const head = (part: number) => ({ tensor: qkv, offset: part * c * L, outer: 3 * c * L, inner: d * L });

  // scores[b, hd, i, j] = sum_e q[e, i] k[e, j] / sqrt(D)
  const scores = g.intermediate(`${name}.scores`, [n, heads, L, L]);
  stridedGemm(
    g,
    `${name}.scores`,
    { rows: L, cols: L, depth: d, outerCount: n, innerCount: heads, alpha: 1 / Math.sqrt(d) },
    { ...head(0), row: 1, k: L },
    { ...head(1), row: 1, k: L },
    { offset: 0, outer: heads * L * L, inner: L * L, row: L, k: 1 },
    scores,
  );

  softmaxRows(g, `${name}.softmax`, scores);

  // attended[b, hd * D + e, i] = sum_j v[e, j] p[i, j]: straight back to NCHW.
  const attended = g.intermediate(`${name}.attended`, x.shape);
  stridedGemm(
    g,
    `${name}.attended`,
    { rows: d, cols: L, depth: L, outerCount: n, innerCount: heads },
    { ...head(2), row: L, k: 1 },
    { tensor: scores, offset: 0, outer: heads * L * L, inner: L * L, row: L, k: 1 },
    { offset: 0, outer: c * L, inner: d * L, row: L, k: 1 },
    attended,
  );
  return conv2d(g, name, attended, w.out.weight, w.out.bias, {
    residual: x,
    outputScale: 1 / options.rescaleOutputFactor,
    kernels: options.kernels,
  });
}
