import { byteSize, bytesPerElement, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import type { DispatchSize } from '../gpu/kernel.ts';
import type { WeightArray } from './weights.ts';

/** What follows a linear layer's bias: none, CLIP's quick_gelu x * sigmoid(1.702 x), or torch's exact (erf) gelu. */
export type TokenActivation = 'none' | 'quick_gelu' | 'gelu';

/** Rows per invocation of the register-blocked token kernels (token_blocks.wgsl's ROWS). */
export const TOKEN_BLOCK_ROWS = 4;

/** Invocations per workgroup of the token kernels: one SIMD vector on llvmpipe. */
const LANES = 8;

/**
 * How the register-blocked token kernels (token_linear.wgsl, token_geglu.wgsl) spread the blocks
 * of `rows` x `outputs` (`outsPerBlock` outputs each): the lanes of a workgroup take consecutive
 * row blocks (`lanes` 0; their weight loads share one address), or output blocks where that leaves
 * far fewer lanes idle (`lanes` 1: the few rows of a UNet's deep levels at small latents, where row
 * blocks ran at a quarter of the speed); the other kind is workgroup_id.y.
 */
export function tokenBlocks(
  rows: number,
  outputs: number,
  outsPerBlock: number,
): { params: Record<string, number>; dispatch: DispatchSize } {
  const rowBlocks = Math.ceil(rows / TOKEN_BLOCK_ROWS);
  const outBlocks = Math.ceil(outputs / outsPerBlock);
  const padded = (n: number) => Math.ceil(n / LANES) * LANES;
  // Across output blocks every lane loads its own weights: ~5% slower for the same work (SD's
  // shapes on llvmpipe), so it is picked only where it saves more than 10% of the padded blocks.
  const acrossOutputs = padded(outBlocks) * rowBlocks < 0.9 * padded(rowBlocks) * outBlocks;
  return {
    params: { row_blocks: rowBlocks, out_blocks: outBlocks, lanes: acrossOutputs ? 1 : 0 },
    dispatch: { invocations: acrossOutputs ? [outBlocks, rowBlocks] : [rowBlocks, outBlocks] },
  };
}

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
  const blocks = tokenBlocks(rows, outFeatures, 8);
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
      ...blocks.params,
    },
    dispatch: blocks.dispatch,
    flops: 2 * rows * inFeatures * outFeatures,
    bytes: byteSize(x) + bytesPerElement(g.weightType) * elementCount(weight.shape) + (residual ? 2 : 1) * byteSize(out),
  });
  return out;
}
