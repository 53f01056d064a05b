/**
 * Builds the graph of transformers' CLIPTextModel (Stable Diffusion's text encoder) from its
 * config, every node and tensor named after the PyTorch module it comes from: token and position
 * embeddings, pre-LayerNorm transformer layers with causal self-attention, the final LayerNorm.
 * The ops are the token-major ones ([batch, tokens, features]) a UNet's transformer blocks use too.
 */
import type { Precision } from '../gpu/shader_source.ts';
import { Graph, type Tensor } from '../graph/graph.ts';
import { fromActivations } from '../ops/cast.ts';
import { layerNorm } from '../ops/layer_norm.ts';
import { multiHeadAttention, type Projection } from '../ops/token_attention.ts';
import { tokenEmbedding } from '../ops/token_embedding.ts';
import { tokenLinear } from '../ops/token_linear.ts';
import type { WeightArray } from '../ops/weights.ts';
import type { ClipTextConfig } from './clip_text_config.ts';
import type { WeightSource } from './weights.ts';

/** i32 [batch, tokens]: the tokenizer's ids, padded to the sequence length. */
export const INPUT_IDS = 'input_ids';
/** f32 [batch, tokens, hidden]: the final LayerNorm's output (converted from f16 in an f16 graph). */
export const LAST_HIDDEN_STATE = 'last_hidden_state';

/** Raised for inputs the text encoder cannot take: token ids outside the vocabulary, a clip skip past the layers. */
export class TextEncoderInputError extends Error {
  override name = 'TextEncoderInputError';
}

export interface ClipTextGraphOptions {
  batch: number;
  /** Tokens per prompt: max_position_embeddings (77 in Stable Diffusion) unless told. */
  length?: number;
  /**
   * diffusers' clip_skip: 0 (the default) is last_hidden_state; N takes the hidden state N layers
   * before the last (hidden_states[-(N + 1)], the last N layers not run), then the final LayerNorm.
   */
  clipSkip?: number;
  /** How weights and activations are stored on the GPU: 'f32' (the default), 'f16' or 'f16-packed' (Precision). */
  precision?: Precision;
  /** Tensor names to keep readable after a run (e.g. 'text_model.encoder.layers.0'). */
  capture?: string[];
}

class ClipTextBuilder {
  private readonly g: Graph;

  constructor(private readonly config: ClipTextConfig, private readonly weights: WeightSource, precision: Precision) {
    this.g = new Graph(precision);
  }

  private linear(prefix: string, outFeatures: number, inFeatures: number): Projection & { bias: WeightArray } {
    return {
      weight: this.weights.take(`${prefix}.weight`, [outFeatures, inFeatures]),
      bias: this.weights.take(`${prefix}.bias`, [outFeatures]),
    };
  }

  private layerNorm(prefix: string, x: Tensor): Tensor {
    const d = this.config.hiddenSize;
    const gamma = this.weights.take(`${prefix}.weight`, [d]);
    const beta = this.weights.take(`${prefix}.bias`, [d]);
    return layerNorm(this.g, prefix, x, gamma, beta, { eps: this.config.layerNormEps });
  }

  /**
   * CLIPEncoderLayer: x + self_attn(layer_norm1(x)), then x + mlp(layer_norm2(x)). The residuals
   * are the output projections' epilogues, so `self_attn.out_proj` holds x + attention and the
   * layer's output (its hidden state) is mlp.fc2's node, named after the layer; `mlp.fc1` holds
   * the activation of fc1.
   */
  private encoderLayer(prefix: string, x: Tensor): Tensor {
    const { hiddenSize: d, intermediateSize, numAttentionHeads } = this.config;
    const attention = `${prefix}.self_attn`;
    const h = multiHeadAttention(this.g, attention, this.layerNorm(`${prefix}.layer_norm1`, x), null, {
      q: this.linear(`${attention}.q_proj`, d, d),
      k: this.linear(`${attention}.k_proj`, d, d),
      v: this.linear(`${attention}.v_proj`, d, d),
      out: this.linear(`${attention}.out_proj`, d, d),
    }, { heads: numAttentionHeads, causal: true, residual: x });
    const fc1 = this.linear(`${prefix}.mlp.fc1`, intermediateSize, d);
    const fc2 = this.linear(`${prefix}.mlp.fc2`, d, intermediateSize);
    const inner = tokenLinear(this.g, `${prefix}.mlp.fc1`, this.layerNorm(`${prefix}.layer_norm2`, h), fc1.weight, fc1.bias, {
      activation: this.config.hiddenAct,
    });
    return tokenLinear(this.g, prefix, inner, fc2.weight, fc2.bias, { residual: h });
  }

  build(options: ClipTextGraphOptions): Graph {
    const { config, g } = this;
    const layers = config.numHiddenLayers;
    const clipSkip = options.clipSkip ?? 0;
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip > layers) {
      throw new TextEncoderInputError(`clip skip must be an integer from 0 to ${layers} (the text encoder's layers), got ${clipSkip}`);
    }
    const length = options.length ?? config.maxPositionEmbeddings;
    if (!Number.isInteger(length) || length < 1 || length > config.maxPositionEmbeddings) {
      throw new TextEncoderInputError(`the sequence length must be an integer from 1 to ${config.maxPositionEmbeddings}, got ${length}`);
    }
    const d = config.hiddenSize;
    const ids = g.input(INPUT_IDS, [options.batch, length], 'i32');
    let x = tokenEmbedding(
      g,
      'text_model.embeddings',
      ids,
      this.weights.take('text_model.embeddings.token_embedding.weight', [config.vocabSize, d]),
      this.weights.take('text_model.embeddings.position_embedding.weight', [config.maxPositionEmbeddings, d]),
    );
    for (let i = 0; i < layers - clipSkip; i++) x = this.encoderLayer(`text_model.encoder.layers.${i}`, x);
    const normed = this.layerNorm('text_model.final_layer_norm', x);
    const out = fromActivations(g, LAST_HIDDEN_STATE, normed);
    if (out === normed) g.alias(LAST_HIDDEN_STATE, out);
    g.markOutput(out);
    for (const name of options.capture ?? []) g.markOutput(g.tensor(name));
    return g;
  }
}

export function buildClipTextGraph(config: ClipTextConfig, weights: WeightSource, options: ClipTextGraphOptions): Graph {
  return new ClipTextBuilder(config, weights, options.precision ?? 'f32').build(options);
}

/** Every weight the model has (clip skip 0), name and shape, in the order the graph asks for them. */
export function clipTextWeightShapes(config: ClipTextConfig): { name: string; shape: number[] }[] {
  const seen: { name: string; shape: number[] }[] = [];
  const recorder: WeightSource = {
    take(name: string, ...shapes: number[][]): WeightArray {
      seen.push({ name, shape: shapes[0] });
      return { name, shape: shapes[0], data: new Float32Array(0) };
    },
  };
  buildClipTextGraph(config, recorder, { batch: 1 });
  return seen;
}
