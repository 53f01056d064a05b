import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';
import { conv2d, type ConvKernels, isTiled } from './conv2d.ts';
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
 * with 3C output channels, and one kernel (attentionCore) reads each head's planes straight
 * from it and writes softmax(q k^T / sqrt(d)) v back in NCHW for the output projection.
 */
export function spatialAttention(
  g: Graph,
  name: string,
  x: Tensor,
  w: AttentionWeights,
  options: { heads: number; groups: number; eps: number; rescaleOutputFactor: number; kernels?: ConvKernels },
): Tensor {
  const c = x.shape[1];
  const heads = options.heads;
  if (c % heads !== 0) throw new Error(`${name}: ${c} channels do not split into ${heads} heads`);
  const projections = [w.query, w.key, w.value];
  // The GroupNorm is the q/k/v conv's prologue where the tiled kernels fuse it, else its own node.
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
  const attended = attentionCore(g, `${name}.attention`, qkv, { heads, kernels: options.kernels });
  return conv2d(g, name, attended, w.out.weight, w.out.bias, {
    residual: x,
    outputScale: 1 / options.rescaleOutputFactor,
    kernels: options.kernels,
  });
}

/** Query positions per invocation of attention.wgsl (one vec4 of a plane). */
const QUERY_BLOCK = 4;
/**
 * The tiled families (GPUs) split each head's output channels over invocations of this many
 * (attention_chunked.wgsl's CHUNK), for parallelism (each recomputes the scores), each keeping its
 * output so far in registers; the register families (software drivers, where the cores are few
 * and already busy) keep a head's channels in one invocation (attention.wgsl), the output so far
 * in an f32 tensor.
 */
const GPU_CHANNEL_CHUNK = 16;

/**
 * softmax(q k^T / sqrt(D)) v for every image and head of `qkv` ([N, 3C, H, W]: the q, k and v
 * projections side by side in channels), in one dispatch with an online softmax
 * (attention.wgsl, attention_chunked.wgsl). The result is [N, C, H, W], head hd in channels
 * hd * D .. hd * D + D - 1.
 */
export function attentionCore(g: Graph, name: string, qkv: Tensor, options: { heads: number; kernels?: ConvKernels }): Tensor {
  const [n, c3, h, w] = qkv.shape;
  const heads = options.heads;
  if (c3 % 3 !== 0) throw new Error(`${name}: ${c3} channels are not q, k and v side by side`);
  const c = c3 / 3;
  if (!(Number.isInteger(heads) && heads >= 1) || c % heads !== 0) {
    throw new Error(`${name}: ${c} channels do not split into ${heads} heads`);
  }
  const d = c / heads;
  const L = h * w;
  const chunk = isTiled(options.kernels) ? Math.min(d, GPU_CHANNEL_CHUNK) : d;
  const chunks = Math.ceil(d / chunk);
  const queryBlocks = Math.ceil(L / QUERY_BLOCK);
  const invocations = n * heads * queryBlocks * chunks;
  const out = g.intermediate(name, [n, c, h, w]);
  const params = {
    length: L,
    head_dim: d,
    heads,
    channels: c,
    query_blocks: queryBlocks,
    chunk,
    chunks,
    invocations,
    scale: 1 / Math.sqrt(d),
    aligned: L % 4 === 0 ? 1 : 0,
  };
  const common = {
    name,
    kind: 'attention',
    params,
    // One invocation per (image, head, 4 query positions, chunk of output channels).
    dispatch: { invocations: [invocations] as [number], flat: true },
    flops: n * heads * (4 * L * L * d + 6 * L * L),
  };
  if (isTiled(options.kernels)) {
    // qkv twice: as scalars and as vec4s (planes a multiple of 4 long are read as vec4s).
    g.addNode({ ...common, shader: 'attention_chunked', inputs: [qkv, qkv], outputs: [out], bytes: byteSize(qkv) + byteSize(out) });
    return out;
  }
  // The output so far between steps over the keys, in f32 whatever the graph's precision.
  const running = g.intermediate(`${name}.running`, [n, c, h, w], 'f32');
  g.addNode({
    ...common,
    shader: 'attention',
    inputs: [qkv, qkv],
    outputs: [running, out],
    bytes: byteSize(qkv) + 2 * byteSize(running) + byteSize(out),
  });
  return out;
}
