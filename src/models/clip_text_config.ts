/**
 * transformers' CLIPTextConfig (a Stable Diffusion pipeline's text_encoder/config.json), validated:
 * an option the engine does not implement is refused by name, and what a file leaves out takes
 * transformers' default.
 */
import { ModelConfigError } from './unet_2d_config.ts';

export type ClipHiddenAct = 'quick_gelu' | 'gelu';

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  /** The MLP's activation: quick_gelu (CLIP's x * sigmoid(1.702 x)) or gelu (erf form, OpenCLIP's). */
  hiddenAct: ClipHiddenAct;
  layerNormEps: number;
}

const WHERE = 'text encoder config.json';

/** transformers' CLIPTextConfig defaults. */
const DEFAULTS = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};

const HIDDEN_ACTS: ClipHiddenAct[] = ['quick_gelu', 'gelu'];

/**
 * Read for information only: training settings (dropout, initialisation), token ids the tokenizer
 * uses, the projection of CLIPTextModelWithProjection (not computed here), and PretrainedConfig's
 * generation and bookkeeping fields, which older transformers wrote into every config.
 */
const IGNORED = new Set([
  '_name_or_path',
  '_commit_hash',
  'architectures',
  'model_type',
  'torch_dtype',
  'transformers_version',
  'dropout',
  'attention_dropout',
  'initializer_range',
  'initializer_factor',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'projection_dim',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'tie_word_embeddings',
  'chunk_size_feed_forward',
  'finetuning_task',
  'id2label',
  'label2id',
  'tokenizer_class',
  'prefix',
  'task_specific_params',
  'problem_type',
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'num_beam_groups',
  'diversity_penalty',
  'temperature',
  'top_k',
  'top_p',
  'typical_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size',
  'bad_words_ids',
  'num_return_sequences',
  'output_scores',
  'return_dict_in_generate',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'remove_invalid_values',
  'exponential_decay_length_penalty',
  'suppress_tokens',
  'begin_suppress_tokens',
  'gradient_checkpointing',
]);

/** Accepted only with these values (each would change the forward pass). */
const FIXED: Record<string, unknown[]> = {
  is_decoder: [false],
  is_encoder_decoder: [false],
  add_cross_attention: [false],
  tie_encoder_decoder: [false],
  cross_attention_hidden_size: [null],
};

const KNOWN = new Set([...Object.keys(DEFAULTS), ...Object.keys(FIXED), 'pruned_heads', ...IGNORED]);

const ARCHITECTURES = ['CLIPTextModel', 'CLIPTextModelWithProjection'];

function positiveInt(c: Record<string, unknown>, key: keyof typeof DEFAULTS): number {
  const value = c[key] ?? DEFAULTS[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ModelConfigError(`${WHERE}: '${key}' must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function parseClipTextConfig(raw: unknown): ClipTextConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelConfigError(`${WHERE}: expected a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c.model_type !== undefined && c.model_type !== 'clip_text_model') {
    throw new ModelConfigError(`${WHERE}: model_type '${c.model_type}' is not supported; the engine runs transformers' CLIPTextModel`);
  }
  if (c.architectures !== undefined) {
    const list = c.architectures;
    if (!Array.isArray(list) || !list.some((a) => ARCHITECTURES.includes(a))) {
      throw new ModelConfigError(
        `${WHERE}: architectures ${JSON.stringify(list)} is not supported; the engine runs ${ARCHITECTURES.join(' or ')}`,
      );
    }
  }
  const unknown = Object.keys(c).filter((k) => !KNOWN.has(k));
  if (unknown.length) throw new ModelConfigError(`${WHERE}: unsupported option(s): ${unknown.join(', ')}`);
  for (const [key, allowed] of Object.entries(FIXED)) {
    if (key in c && !allowed.includes(c[key])) {
      throw new ModelConfigError(
        `${WHERE}: ${key} = ${JSON.stringify(c[key])} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }
  const pruned = c.pruned_heads;
  if (pruned !== undefined && !(typeof pruned === 'object' && pruned !== null && Object.keys(pruned).length === 0)) {
    throw new ModelConfigError(`${WHERE}: pruned_heads ${JSON.stringify(pruned)} is not supported (only {})`);
  }
  const hiddenAct = c.hidden_act ?? DEFAULTS.hidden_act;
  if (!HIDDEN_ACTS.includes(hiddenAct as ClipHiddenAct)) {
    throw new ModelConfigError(
      `${WHERE}: hidden_act = ${JSON.stringify(hiddenAct)} is not supported (supported: ${HIDDEN_ACTS.map((a) => `"${a}"`).join(', ')})`,
    );
  }
  const layerNormEps = c.layer_norm_eps ?? DEFAULTS.layer_norm_eps;
  if (typeof layerNormEps !== 'number' || !(layerNormEps > 0) || !Number.isFinite(layerNormEps)) {
    throw new ModelConfigError(`${WHERE}: 'layer_norm_eps' must be a positive number, got ${JSON.stringify(layerNormEps)}`);
  }
  const hiddenSize = positiveInt(c, 'hidden_size');
  const numAttentionHeads = positiveInt(c, 'num_attention_heads');
  if (hiddenSize % numAttentionHeads !== 0) {
    throw new ModelConfigError(`${WHERE}: hidden_size ${hiddenSize} does not split into num_attention_heads ${numAttentionHeads}`);
  }
  return {
    vocabSize: positiveInt(c, 'vocab_size'),
    hiddenSize,
    intermediateSize: positiveInt(c, 'intermediate_size'),
    numHiddenLayers: positiveInt(c, 'num_hidden_layers'),
    numAttentionHeads,
    maxPositionEmbeddings: positiveInt(c, 'max_position_embeddings'),
    hiddenAct: hiddenAct as ClipHiddenAct,
    layerNormEps,
  };
}
