import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';
import type { ConvKernels } from './conv2d.ts';
import { tokenLinear } from './token_linear.ts';
import { concatenated, type WeightArray } from './weights.ts';

/**
 * Columns offset .. offset + width of every row of a token-major tensor [batch, tokens, stride]:
 * q, k or v where a fused projection holds them side by side.
 */
export interface TokenColumns {
  tensor: Tensor;
  offset: number;
  width: number;
}

/** All of a tensor's columns, or `width` of them from `offset`. */
export function tokenColumns(tensor: Tensor, offset = 0, width = tensor.shape[tensor.shape.length - 1] - offset): TokenColumns {
  return { tensor, offset, width };
}

/**
 * softmax(q k^T / sqrt(head_dim)) v for every image and head, queries and keys/values from
 * token-major tensors of possibly different lengths (cross-attention); `causal`: query i sees keys
 * 0 ..= i (same lengths only). One dispatch with an online softmax, no score matrix stored. The
 * output is [batch, queries, width], head h in columns h * head_dim ..
 *
 * The kernel follows the conv family (`kernels`, as conv2d takes it; see attentionShader).
 */
export function tokenAttentionCore(
  g: Graph,
  name: string,
  q: TokenColumns,
  k: TokenColumns,
  v: TokenColumns,
  options: { heads: number; causal?: boolean; kernels?: ConvKernels },
): Tensor {
  for (const [part, c] of [['q', q], ['k', k], ['v', v]] as const) {
    const shape = c.tensor.shape;
    if (shape.length !== 3) throw new Error(`${name}: ${part} must be [batch, tokens, width], got [${shape}]`);
    if (c.offset < 0 || c.width < 1 || c.offset + c.width > shape[2]) {
      throw new Error(`${name}: ${part}'s columns ${c.offset} .. ${c.offset + c.width} lie outside [${shape}]`);
    }
  }
  const [batch, queryLength] = q.tensor.shape;
  const keyLength = k.tensor.shape[1];
  if (k.tensor.shape[0] !== batch || v.tensor.shape[0] !== batch || v.tensor.shape[1] !== keyLength) {
    throw new Error(`${name}: q [${q.tensor.shape}], k [${k.tensor.shape}] and v [${v.tensor.shape}] do not share batch and key tokens`);
  }
  const width = q.width;
  if (k.width !== width || v.width !== width) throw new Error(`${name}: q, k and v are ${q.width}, ${k.width} and ${v.width} wide`);
  const heads = options.heads;
  if (!(Number.isInteger(heads) && heads >= 1) || width % heads !== 0) {
    throw new Error(`${name}: ${width} columns do not split into ${heads} heads`);
  }
  const causal = options.causal ?? false;
  if (causal && queryLength !== keyLength) {
    throw new Error(`${name}: a causal mask needs as many queries as keys (${queryLength}, ${keyLength})`);
  }
  const headDim = width / heads;
  const out = g.intermediate(name, [batch, queryLength, width]);
  const common = {
    name,
    kind: 'token_attention',
    inputs: [q.tensor, k.tensor, v.tensor],
    outputs: [out],
    bytes: byteSize(q.tensor) + byteSize(k.tensor) + byteSize(v.tensor) + byteSize(out),
  };
  const layout = {
    heads,
    head_dim: headDim,
    query_length: queryLength,
    key_length: keyLength,
    q_stride: q.tensor.shape[2],
    q_offset: q.offset,
    k_stride: k.tensor.shape[2],
    k_offset: k.offset,
    v_stride: v.tensor.shape[2],
    v_offset: v.offset,
    scale: 1 / Math.sqrt(headDim),
    causal: causal ? 1 : 0,
  };
  const shader = attentionShader(options.kernels, headDim, [q, k, v]);
  if (shader === 'token_attention_registers' || shader === 'token_attention_registers_wide') {
    const queryBlocks = Math.ceil(queryLength / REGISTER_QUERIES);
    const quads = (n: number) => n / 4;
    g.addNode({
      ...common,
      shader,
      params: {
        ...layout,
        q_stride: quads(layout.q_stride),
        q_offset: quads(layout.q_offset),
        k_stride: quads(layout.k_stride),
        k_offset: quads(layout.k_offset),
        v_stride: quads(layout.v_stride),
        v_offset: quads(layout.v_offset),
        query_blocks: queryBlocks,
      },
      dispatch: { invocations: [queryBlocks, batch * heads] },
      // q k^T and p v (every score once), and per score its scale, mask, exp and sum.
      flops: batch * heads * queryLength * keyLength * (4 * headDim + 6),
    });
    return out;
  }
  if (shader === 'token_attention_tiled' || shader === 'token_attention_tiled_wide') {
    const queryBlocks = Math.ceil(queryLength / TILED_QUERIES);
    const workgroups = batch * heads * queryBlocks;
    // Keys of v per staged chunk: the largest power of 2 up to the key tile whose chunk (and the
    // last column block's overreach) fits the shader's stage.
    let valueKeys = TILED_KEYS;
    while (valueKeys * headDim + TILED_COLUMNS > TILED_STAGE_FLOATS) valueKeys /= 2;
    g.addNode({
      ...common,
      shader,
      params: {
        ...layout,
        query_blocks: queryBlocks,
        workgroups,
        value_keys: valueKeys,
        column_blocks: Math.ceil(headDim / TILED_COLUMNS),
      },
      dispatch: { invocations: [workgroups * TILED_INVOCATIONS], flat: true },
      // q k^T and p v, and per score its scale, mask, exp and sum.
      flops: batch * heads * queryLength * keyLength * (4 * headDim + 6),
    });
    return out;
  }
  const chunks = Math.ceil(headDim / ATTENTION_CHUNK);
  const invocations = batch * heads * queryLength * chunks;
  g.addNode({
    ...common,
    shader: 'token_attention',
    params: { ...layout, chunks, invocations },
    dispatch: { invocations: [invocations], flat: true },
    flops: batch * heads * queryLength * keyLength * (2 * headDim * chunks + 2 * headDim + 6),
  });
  return out;
}

/** token_attention.wgsl's CHUNK: the output columns of one invocation. */
const ATTENTION_CHUNK = 16;

/**
 * shaders/include/token_attention_tiled.wgsl's shape: queries per workgroup (BLOCK_QUERIES), keys
 * per tile (TILE_KEYS), invocations, the columns of one column block, and its `stage` (STAGE_FLOATS).
 */
const TILED_QUERIES = 64;
const TILED_KEYS = 32;
const TILED_INVOCATIONS = 256;
const TILED_COLUMNS = 16;
const TILED_STAGE_FLOATS = 1984;
/** token_attention_registers.wgsl's queries per invocation (token_blocks.wgsl's ROWS). */
const REGISTER_QUERIES = 4;

/** The attention kernels, by the widest head each holds. */
const KERNELS = {
  // MAX_QUADS vec4s of each of an invocation's 4 output rows.
  registers: [
    { maxHeadDim: 80, shader: 'token_attention_registers' },
    { maxHeadDim: 160, shader: 'token_attention_registers_wide' },
  ],
  // COLUMN_BLOCKS x 16 output columns per invocation.
  tiled: [
    { maxHeadDim: 80, shader: 'token_attention_tiled' },
    { maxHeadDim: 160, shader: 'token_attention_tiled_wide' },
  ],
} as const;

export type AttentionShader =
  | (typeof KERNELS)[keyof typeof KERNELS][number]['shader']
  | 'token_attention';

/**
 * The attention shader for the conv family `kernels` (see preferredKernels), a head dim and q, k
 * and v (`parts`):
 * - the register families (software drivers, where a workgroup is a loop on one core, its
 *   barriers suspend every lane group, and a storage load costs tens of multiply-adds):
 *   token_attention_registers.wgsl, 4 queries per invocation, every k and v load shared by the
 *   lanes. It reads vec4s, so the head dim and every stride and offset must be multiples of 4;
 * - the tiled families (GPUs), and the register families where vec4s do not fit:
 *   token_attention_tiled.wgsl, FlashAttention-style (64 queries per workgroup, keys 32 at a time
 *   staged in workgroup memory);
 * - no family (the text encoder's 77-token causal attention) or heads over 160:
 *   token_attention.wgsl, one invocation per query and 16 output columns.
 */
export function attentionShader(kernels: ConvKernels | undefined, headDim: number, parts: TokenColumns[]): AttentionShader {
  if (kernels === undefined) return 'token_attention';
  const quads = headDim % 4 === 0 && parts.every((p) => p.offset % 4 === 0 && p.tensor.shape[2] % 4 === 0);
  const registers = (kernels === 'registers' || kernels === 'registers-storage') && quads;
  const fits = (variant: { maxHeadDim: number }) => headDim <= variant.maxHeadDim;
  return KERNELS[registers ? 'registers' : 'tiled'].find(fits)?.shader ?? 'token_attention';
}

export interface Projection {
  weight: WeightArray;
  /** null: a projection without bias (diffusers' to_q, to_k, to_v). */
  bias: WeightArray | null;
}

export interface AttentionWeights {
  q: Projection;
  k: Projection;
  v: Projection;
  out: Projection;
}

/**
 * Multi-head attention of a transformer layer (CLIP's self_attn, diffusers' Attention over tokens):
 * the q, k, v projections, attention per head, the output projection, plus `residual` when given.
 * Queries come from x [batch, tokens, dim]; keys and values from `context` [batch, keys, dim'] or,
 * without one, from x itself. The projections of x are one linear node (q, k and v side by side;
 * q alone with a context, and k and v then one node over the context), which the attention reads in
 * place. Nodes: `${name}.qkv_proj` (or `.q_proj` and `.kv_proj`), `${name}.attention`, and the
 * output projection, `${name}.out_proj` unless `outputName` says (diffusers' `to_out.0`). `kernels`
 * picks the attention kernel as it picks the convs' (tokenAttentionCore).
 */
export function multiHeadAttention(
  g: Graph,
  name: string,
  x: Tensor,
  context: Tensor | null,
  w: AttentionWeights,
  options: { heads: number; causal?: boolean; residual?: Tensor; outputName?: string; kernels?: ConvKernels },
): Tensor {
  const width = w.q.weight.shape[0];
  const fused = (suffix: string, parts: Projection[]): Projection => {
    const inFeatures = parts[0].weight.shape[1];
    const weight = concatenated(`${name}.${suffix}.weight`, parts.map((p) => p.weight), [parts.length * width, inFeatures]);
    const bias = parts.every((p) => p.bias === null)
      ? null
      : concatenated(`${name}.${suffix}.bias`, parts.map((p) => p.bias ?? zeros(`${p.weight.name}:zero_bias`, width)), [
        parts.length * width,
      ]);
    return { weight, bias };
  };
  for (const [part, p] of Object.entries(w)) {
    if (p.weight.shape[0] !== width && part !== 'out') {
      throw new Error(`${name}: ${part} projects to ${p.weight.shape[0]} features, q to ${width}`);
    }
  }
  let q: TokenColumns, k: TokenColumns, v: TokenColumns;
  if (context === null) {
    const qkvWeights = fused('qkv_proj', [w.q, w.k, w.v]);
    const qkv = tokenLinear(g, `${name}.qkv_proj`, x, qkvWeights.weight, qkvWeights.bias);
    [q, k, v] = [0, 1, 2].map((i) => tokenColumns(qkv, i * width, width));
  } else {
    q = tokenColumns(tokenLinear(g, `${name}.q_proj`, x, w.q.weight, w.q.bias));
    const kvWeights = fused('kv_proj', [w.k, w.v]);
    const kv = tokenLinear(g, `${name}.kv_proj`, context, kvWeights.weight, kvWeights.bias);
    [k, v] = [0, 1].map((i) => tokenColumns(kv, i * width, width));
  }
  const attended = tokenAttentionCore(g, `${name}.attention`, q, k, v, {
    heads: options.heads,
    causal: options.causal,
    kernels: options.kernels,
  });
  return tokenLinear(g, options.outputName ?? `${name}.out_proj`, attended, w.out.weight, w.out.bias, { residual: options.residual });
}

function zeros(name: string, length: number): WeightArray {
  return { name, shape: [length], data: new Float32Array(length) };
}
