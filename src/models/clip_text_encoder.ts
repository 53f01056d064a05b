/**
 * A CLIPTextModel ready to run: its config and weights parsed and checked once
 * (`readClipTextModel`, no GPU), its weights uploaded once per device and precision, compiled for
 * a batch of prompts (`ClipTextEncoder.compile`); `encode` turns token ids into last_hidden_state.
 */
import type { Gpu } from '../gpu/device.ts';
import { Readback } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { CompiledGraph, type GraphLimits } from '../graph/executor.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import { type ClipTextConfig, parseClipTextConfig } from './clip_text_config.ts';
import { CallQueue, devicePrecision, graphLimits, weightsOn } from './compile.ts';
import { buildClipTextGraph, INPUT_IDS, LAST_HIDDEN_STATE, TextEncoderInputError } from './clip_text_model.ts';
import { WeightStore } from './weights.ts';

export interface ClipTextFiles {
  /** text_encoder/config.json, parsed. */
  config: unknown;
  /** model.safetensors, or pytorch_model.bin (a torch.save state dict), told apart by content. */
  weights: Uint8Array;
}

export interface ClipTextWeights {
  config: ClipTextConfig;
  /** The tensors the model uses (see `textModelTensors`). */
  file: SafetensorsFile;
}

/**
 * The tensors of CLIPTextModel itself: those under `text_model.`, less the int64 position_ids
 * buffer (positions are 0 .. L-1, as transformers now takes them). Others (CLIPTextModelWithProjection's
 * text_projection, a whole CLIPModel's vision tower) are not the text encoder's and are left out;
 * an unexpected tensor under `text_model.` (a layer the config does not have) is still an error.
 */
function textModelTensors(file: SafetensorsFile): SafetensorsFile {
  const tensors = new Map(
    [...file.tensors].filter(([name]) => name.startsWith('text_model.') && name !== 'text_model.embeddings.position_ids'),
  );
  return { tensors, metadata: file.metadata };
}

/** Parses and validates a text encoder's config and weights without touching the GPU. */
export function readClipTextModel(files: ClipTextFiles): ClipTextWeights {
  const file = textModelTensors(parseWeightsFile(files.weights));
  const config = parseClipTextConfig(files.config);
  // Build once to check every weight against the config before any GPU work.
  const store = new WeightStore(file, { check: true });
  buildClipTextGraph(config, store, { batch: 1 });
  store.finish();
  return { config, file };
}

export interface ClipTextCompileOptions {
  /** Prompts per encode. */
  batch: number;
  /** diffusers' clip_skip (see ClipTextGraphOptions). */
  clipSkip?: number;
  precision?: Precision;
  /** Tokens per prompt: max_position_embeddings unless told. */
  length?: number;
  /** Tensor names to keep readable after a run. */
  capture?: string[];
  /** Limits stricter than the device's. */
  limits?: Partial<GraphLimits>;
}

export class ClipTextEncoder {
  private readonly readback: Readback;
  private readonly calls = new CallQueue();

  private constructor(
    readonly config: ClipTextConfig,
    readonly compiled: CompiledGraph,
    readonly batch: number,
    readonly length: number,
  ) {
    this.readback = new Readback(compiled.gpu.device, 'text_encoder.readback', compiled.buffer(LAST_HIDDEN_STATE).size);
  }

  static async compile(gpu: Gpu, model: ClipTextWeights, options: ClipTextCompileOptions): Promise<ClipTextEncoder> {
    if (!Number.isInteger(options.batch) || options.batch < 1) throw new Error(`batch must be a positive integer, got ${options.batch}`);
    const precision = devicePrecision(gpu, options.precision);
    const limits = graphLimits(gpu, options.limits);
    const graph = buildClipTextGraph(model.config, new WeightStore(model.file, { check: false }), { ...options, precision });
    const compiled = await CompiledGraph.compile(gpu, graph, {
      label: 'text_encoder',
      weights: weightsOn(model, gpu.device, precision),
      limits,
    });
    return new ClipTextEncoder(model.config, compiled, options.batch, graph.tensor(INPUT_IDS).shape[1]);
  }

  get precision(): Precision {
    return this.compiled.graph.precision;
  }

  /** [batch, tokens, hidden]: what `encode` returns. */
  get outputShape(): [number, number, number] {
    return [this.batch, this.length, this.config.hiddenSize];
  }

  /** The output's buffer (f32 [batch, tokens, hidden]), for a graph that reads it on the GPU. */
  get outputBuffer(): GPUBuffer {
    return this.compiled.buffer(LAST_HIDDEN_STATE);
  }

  /** Runs `work` alone on this encoder's buffers: overlapping calls run one after another. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.calls.run(work);
  }

  /**
   * last_hidden_state [batch, tokens, hidden] of the prompts' token ids (batch * tokens of them,
   * prompt after prompt, each padded to the sequence length as the tokenizer does).
   */
  async encode(ids: Int32Array): Promise<Float32Array> {
    const expected = this.batch * this.length;
    if (ids.length !== expected) {
      throw new TextEncoderInputError(`encode takes ${this.batch} prompts of ${this.length} token ids (${expected}), got ${ids.length}`);
    }
    const vocab = this.config.vocabSize;
    const bad = ids.findIndex((id) => id < 0 || id >= vocab);
    if (bad !== -1) {
      throw new TextEncoderInputError(
        `token id ${ids[bad]} (prompt ${Math.floor(bad / this.length)}, position ${
          bad % this.length
        }) is outside the vocabulary of ${vocab}`,
      );
    }
    return await this.exclusive(async () => {
      this.compiled.write(INPUT_IDS, ids);
      await this.compiled.run();
      return await this.compiled.read(LAST_HIDDEN_STATE, this.readback);
    });
  }

  /** A captured intermediate (named in `capture` at compile) after the last run, as f32. */
  read(name: string): Promise<Float32Array> {
    return this.exclusive(() => this.compiled.read(name));
  }

  destroy(): void {
    this.readback.destroy();
    this.compiled.destroy();
  }
}
