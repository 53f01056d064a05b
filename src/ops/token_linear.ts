import { byteSize, bytesPerElement, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

/** What follows a linear layer's bias: none, CLIP's quick_gelu x * sigmoid(1.702 x), or torch's exact (erf) gelu. */
export type TokenActivation = 'none' | 'quick_gelu' | 'gelu';

/** Rows per invocation of the register-blocked token kernels (token_blocks.wgsl's ROWS). */
export const TOKEN_BLOCK_ROWS = 4;

const ACTIVATION_CODES: Record<TokenActivation, number> = { none: 0, quick_gelu: 1, gelu: 2 };

export interface TokenLinearOptions {
  activation?: TokenActivation;
  /** Added after the activation: a tensor of the output's shape (a transformer's skip connection). */
  residual?: Tensor;
}

/**
 * nn.Linear over the tokens of a token-major tensor: x [..., in] (e.g. [batch, tokens, in]) times
 * weight [out, in] plus the bias (null: none), then the activation, then the residual; the output
 * is [..., out]. One invocation per block of TOKEN_BLOCK_ROWS rows x 8 outputs (token_linear.wgsl).
 */
export function tokenLinear(
  g: Graph,
  name: string,
  x: Tensor,
  weight: WeightArray,
  bias: WeightArray | null,
  options: TokenLinearOptions = {},
): Tensor {
  const inFeatures = x.shape[x.shape.length - 1];
  const [outFeatures, wIn] = weight.shape;
  if (weight.shape.length !== 2 || wIn !== inFeatures) {
    throw new Error(`${name}: weight [${weight.shape}] does not take the input's ${inFeatures} features`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== outFeatures)) {
    throw new Error(`${name}: bias [${bias.shape}] does not match ${outFeatures} output features`);
  }
  const rows = elementCount(x.shape) / inFeatures;
  const shape = [...x.shape.slice(0, -1), outFeatures];
  const residual = options.residual;
  if (residual && residual.shape.join() !== shape.join()) {
    throw new Error(`${name}: residual [${residual.shape}] is not the output's shape [${shape}]`);
  }
  const out = g.intermediate(name, shape);
  const activation = options.activation ?? 'none';
  const weightTensor = g.weight(weight.name, weight.shape, () => weight.data, g.weightType);
  const quads = inFeatures % 4 === 0;
  const rowBlocks = Math.ceil(rows / TOKEN_BLOCK_ROWS);
  g.addNode({
    name,
    kind: 'token_linear',
    shader: 'token_linear',
    // The vec4 views (input4, weight4) only where rows are whole vec4s; else the unused binding.
    inputs: [
      x,
      quads ? x : null,
      weightTensor,
      quads ? weightTensor : null,
      bias ? g.weight(bias.name, bias.shape, () => bias.data) : null,
      residual ?? null,
    ],
    outputs: [out],
    params: {
      rows,
      in_features: inFeatures,
      out_features: outFeatures,
      activation: ACTIVATION_CODES[activation],
      has_bias: bias ? 1 : 0,
      has_residual: residual ? 1 : 0,
      row_blocks: rowBlocks,
    },
    // One invocation per row block, for each block of 8 outputs (workgroup_id.y).
    dispatch: { invocations: [rowBlocks, Math.ceil(outFeatures / 8)] },
    flops: 2 * rows * inFeatures * outFeatures,
    bytes: byteSize(x) + bytesPerElement(g.weightType) * elementCount(weight.shape) + (residual ? 2 : 1) * byteSize(out),
  });
  return out;
}
