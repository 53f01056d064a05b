// transformers' CLIPTextModel on the token-major ops: the tiny SD text encoder against the float64
// reference from transformers (golden/sd), clip skip and gelu against a float64 forward written
// here from the same weights, f16 where the adapter has shader-f16, the real SD 1.5 and 2.1
// configs built without a GPU (parameter counts), and what is refused. The ops themselves first,
// on shapes the UNet's transformer blocks will give them (cross-attention, no biases, heads wider
// than one invocation's chunk). Every comparison prints its measured error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { Precision } from '../src/gpu/shader_source.ts';
import { CompiledGraph } from '../src/graph/executor.ts';
import { byteSize, Graph } from '../src/graph/graph.ts';
import { parseSafetensors, serializeSafetensors, type TensorToWrite, toFloat32 } from '../src/io/safetensors.ts';
import { type ClipTextConfig, parseClipTextConfig } from '../src/models/clip_text_config.ts';
import { buildClipTextGraph, clipTextWeightShapes, LAST_HIDDEN_STATE, TextEncoderInputError } from '../src/models/clip_text_model.ts';
import { ClipTextEncoder, readClipTextModel } from '../src/models/clip_text_encoder.ts';
import { ModelConfigError } from '../src/models/unet_2d_config.ts';
import { ModelWeightsError, type WeightSource } from '../src/models/weights.ts';
import { layerNorm } from '../src/ops/layer_norm.ts';
import { multiHeadAttention } from '../src/ops/token_attention.ts';
import { GUARANTEED_BINDING_BYTES, tokenEmbedding } from '../src/ops/token_embedding.ts';
import { type TokenActivation, tokenLinear } from '../src/ops/token_linear.ts';
import type { WeightArray } from '../src/ops/weights.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { mulberry32 } from './util/random.ts';
import { attention64, erf, gpu, refused, runGraph } from './util/shared_gpu.ts';

const TEXT_ENCODER_DIR = '../shared/golden/sd/tiny-sd/text_encoder';
const SD_CONFIGS = '../shared/golden/sd/configs';
/** The brief's bound for the golden comparison in f32. */
const TOLERANCE = 1e-4;
/** f16 storage of every activation and weight (11-bit significands) through two layers. */
const F16_TOLERANCE = 2e-3;
/** One op in f32 against float64: sums of at most a few hundred terms. */
const OP_TOLERANCE = 2e-6;

function random(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => uniform() - 0.5;
}

function filled(n: number, rand: () => number, scale = 1, offset = 0): Float32Array {
  return new Float32Array(n).map(() => rand() * scale + offset);
}

function weight(name: string, shape: number[], rand: () => number, scale = 1): WeightArray {
  return { name, shape, data: filled(shape.reduce((a, b) => a * b, 1), rand, scale) };
}

// ---------------------------------------------------------------------------------------------
// Float64 references.

type Vector = ArrayLike<number>;

function activate(x: number, activation: TokenActivation): number {
  if (activation === 'quick_gelu') return x / (1 + Math.exp(-1.702 * x));
  if (activation === 'gelu') return 0.5 * x * (1 + erf(x / Math.SQRT2));
  return x;
}

/** x [rows, in] W^T + b, activation, + residual. */
function linearReference(
  x: Vector,
  rows: number,
  w: Vector,
  b: Vector | null,
  outFeatures: number,
  activation: TokenActivation = 'none',
  residual?: Vector,
): Float64Array {
  const inFeatures = x.length / rows;
  const out = new Float64Array(rows * outFeatures);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outFeatures; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inFeatures; i++) acc += x[r * inFeatures + i] * w[o * inFeatures + i];
      out[r * outFeatures + o] = activate(acc, activation) + (residual ? residual[r * outFeatures + o] : 0);
    }
  }
  return out;
}

function layerNormReference(x: Vector, dim: number, gamma: Vector, beta: Vector, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let start = 0; start < x.length; start += dim) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[start + i];
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[start + i] - mean) ** 2;
    variance /= dim;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < dim; i++) out[start + i] = (x[start + i] - mean) * inv * gamma[i] + beta[i];
  }
  return out;
}

/** CLIPTextModel in float64: last_hidden_state, or with clip skip the final LayerNorm of an earlier hidden state. */
function clipReference(config: ClipTextConfig, w: (name: string) => Float32Array, ids: Int32Array, batch: number, clipSkip = 0) {
  const { hiddenSize: d, intermediateSize, numAttentionHeads: heads, layerNormEps: eps } = config;
  const length = ids.length / batch;
  const rows = batch * length;
  const token = w('text_model.embeddings.token_embedding.weight');
  const position = w('text_model.embeddings.position_embedding.weight');
  let x: Float64Array = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) x[r * d + j] = token[ids[r] * d + j] + position[(r % length) * d + j];
  }
  for (let i = 0; i < config.numHiddenLayers - clipSkip; i++) {
    const p = `text_model.encoder.layers.${i}`;
    const norm = (name: string, input: Float64Array) => layerNormReference(input, d, w(`${p}.${name}.weight`), w(`${p}.${name}.bias`), eps);
    const proj = (name: string, input: Float64Array, out: number, activation?: TokenActivation, residual?: Float64Array) =>
      linearReference(input, rows, w(`${p}.${name}.weight`), w(`${p}.${name}.bias`), out, activation, residual);
    const h = norm('layer_norm1', x);
    const [q, k, v] = ['q', 'k', 'v'].map((n) => proj(`self_attn.${n}_proj`, h, d));
    const attended = attention64(q, k, v, batch, length, length, d, heads, true);
    x = proj('self_attn.out_proj', attended, d, 'none', x);
    const inner = proj('mlp.fc1', norm('layer_norm2', x), intermediateSize, config.hiddenAct);
    x = proj('mlp.fc2', inner, d, 'none', x);
  }
  return layerNormReference(x, d, w('text_model.final_layer_norm.weight'), w('text_model.final_layer_norm.bias'), eps);
}

// ---------------------------------------------------------------------------------------------
// The ops.

/** Builds a graph with `build`, runs it once on `inputs` and returns its output. */

const ops = suite('token ops');

ops('token_linear: none, quick_gelu and gelu, with and without bias and residual, against float64', async () => {
  const rand = random(7);
  const [batch, tokens, inF, outF] = [3, 5, 37, 21];
  const x = filled(batch * tokens * inF, rand, 4);
  const residual = filled(batch * tokens * outF, rand);
  const w = weight('w', [outF, inF], rand, 1);
  const b = weight('b', [outF], rand);
  const cases: [TokenActivation, boolean, boolean][] = [
    ['none', true, false],
    ['quick_gelu', true, false],
    ['gelu', true, true],
    ['gelu', false, false],
    ['none', false, true],
  ];
  for (const [activation, withBias, withResidual] of cases) {
    const actual = await runGraph({
      x: { shape: [batch, tokens, inF], data: x },
      residual: { shape: [batch, tokens, outF], data: residual },
    }, (g, t) => tokenLinear(g, 'linear', t.x, w, withBias ? b : null, { activation, residual: withResidual ? t.residual : undefined }));
    const reference = linearReference(
      x,
      batch * tokens,
      w.data,
      withBias ? b.data : null,
      outF,
      activation,
      withResidual ? residual : undefined,
    );
    expectClose(
      `${activation}${withBias ? ' + bias' : ''}${withResidual ? ' + residual' : ''}`,
      actual,
      Float32Array.from(reference),
      OP_TOLERANCE,
    );
  }
});

ops('gelu over its whole range: the shader erf against float64 erf', async () => {
  // x from -10 to 10, where erf goes from its series to its tails and saturates.
  const n = 2001;
  const x = Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
  const identity = { name: 'one', shape: [1, 1], data: new Float32Array([1]) };
  const actual = await runGraph(
    { x: { shape: [1, n, 1], data: x } },
    (g, t) => tokenLinear(g, 'gelu', t.x, identity, null, { activation: 'gelu' }),
  );
  const reference = Float32Array.from(x, (v) => activate(v, 'gelu'));
  // Relative to max(1, |x|): for negative x, 1 + erf(x / sqrt 2) cancels in f32 (as in torch's own
  // f32 gelu), leaving an error of about ulp(1) * |x| where gelu itself is tiny.
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(actual[i] - reference[i]) / Math.max(1, Math.abs(x[i])));
  console.log(`    gelu on [-10, 10]: worst |error| / max(1, |x|) ${worst.toExponential(2)} (limit 1e-6)`);
  assert.ok(worst < 1e-6, `gelu error ${worst}`);
  expectClose('gelu on [-10, 10]', actual, reference, OP_TOLERANCE);
});

ops('token_embedding: rows of the token table at each id plus each position, the table whole and in 2 and 4 bindings', async () => {
  const rand = random(5);
  const [batch, length, vocab, dim, positions] = [3, 7, 50, 8, 9];
  const table = weight('token', [vocab, dim], rand);
  const position = weight('position', [positions, dim], rand);
  const ids = Int32Array.from({ length: batch * length }, (_, i) => (i * 37 + 11) % vocab);
  ids[0] = 0;
  ids[1] = vocab - 1;
  const reference = new Float32Array(batch * length * dim);
  for (let t = 0; t < batch * length; t++) {
    for (let j = 0; j < dim; j++) reference[t * dim + j] = table.data[ids[t] * dim + j] + position.data[(t % length) * dim + j];
  }
  for (const rowsPerPart of [vocab, 25, 13]) {
    const g = new Graph();
    const input = g.input('ids', [batch, length], 'i32');
    const out = g.markOutput(tokenEmbedding(g, 'embeddings', input, table, position, { partBytes: rowsPerPart * dim * 4 }));
    const parts = g.nodes[0].inputs.slice(1, 5).filter((t) => t !== null).length;
    assert.is(parts, Math.ceil(vocab / rowsPerPart));
    const compiled = await CompiledGraph.compile(await gpu(), g, { label: 'token-ops-test' });
    try {
      compiled.write('ids', ids);
      await compiled.run();
      expectClose(`token_embedding, table in ${parts} part(s)`, await compiled.read(out.name), reference, OP_TOLERANCE);
    } finally {
      compiled.destroy();
    }
  }
  const g = new Graph();
  await refused(
    () => tokenEmbedding(g, 'embeddings', g.input('ids', [1, length], 'i32'), table, position, { partBytes: 12 * dim * 4 }),
    Error,
    'needs more than 4 bindings',
  );
});

ops('layer_norm over the last dim: rows with a mean far from 0, odd width', async () => {
  const rand = random(3);
  const [rows, dim] = [13, 45];
  // A mean of 20 against a spread of +-1: x - mean loses about ulp(20) / 2 to the mean's rounding.
  const x = filled(rows * dim, rand, 2, 20);
  const gamma = weight('gamma', [dim], rand);
  const beta = weight('beta', [dim], rand);
  const actual = await runGraph({ x: { shape: [1, rows, dim], data: x } }, (g, t) => layerNorm(g, 'ln', t.x, gamma, beta, { eps: 1e-5 }));
  expectClose('layer_norm', actual, Float32Array.from(layerNormReference(x, dim, gamma.data, beta.data, 1e-5)), 1e-5);
});

ops('multi-head attention: causal self-attention and cross-attention (other length and width), heads wider than a chunk', async () => {
  const rand = random(11);
  // head_dim 24: one full chunk of 16 and one of 8.
  const [batch, lq, lk, dim, contextDim, heads, headDim] = [2, 9, 6, 20, 12, 2, 24];
  const inner = heads * headDim;
  const x = filled(batch * lq * dim, rand, 2);
  const context = filled(batch * lk * contextDim, rand, 2);
  const residual = filled(batch * lq * dim, rand);
  for (const cross of [false, true]) {
    const kvDim = cross ? contextDim : dim;
    // diffusers' cross-attention has no q, k, v biases; CLIP's self-attention has them.
    const proj = (name: string, outF: number, inF: number, bias: boolean) => ({
      weight: weight(`${name}.weight`, [outF, inF], rand, 0.5),
      bias: bias ? weight(`${name}.bias`, [outF], rand) : null,
    });
    const w = {
      q: proj('q', inner, dim, !cross),
      k: proj('k', inner, kvDim, !cross),
      v: proj('v', inner, kvDim, !cross),
      out: proj('out', dim, inner, true),
    };
    const actual = await runGraph({
      x: { shape: [batch, lq, dim], data: x },
      context: { shape: [batch, lk, contextDim], data: context },
      residual: { shape: [batch, lq, dim], data: residual },
    }, (g, t) => multiHeadAttention(g, 'attn', t.x, cross ? t.context : null, w, { heads, causal: !cross, residual: t.residual }));
    const keysFrom = cross ? context : x;
    const keyRows = batch * (cross ? lk : lq);
    const q = linearReference(x, batch * lq, w.q.weight.data, w.q.bias?.data ?? null, inner);
    const k = linearReference(keysFrom, keyRows, w.k.weight.data, w.k.bias?.data ?? null, inner);
    const v = linearReference(keysFrom, keyRows, w.v.weight.data, w.v.bias?.data ?? null, inner);
    const attended = attention64(q, k, v, batch, lq, cross ? lk : lq, inner, heads, !cross);
    const reference = linearReference(attended, batch * lq, w.out.weight.data, w.out.bias!.data, dim, 'none', residual);
    expectClose(
      cross ? `cross-attention ${lq} queries over ${lk} keys` : `causal self-attention over ${lq} tokens`,
      actual,
      Float32Array.from(reference),
      OP_TOLERANCE,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// The model.

function tinyFiles() {
  return {
    config: JSON.parse(readFileSync(`${TEXT_ENCODER_DIR}/config.json`, 'utf8')) as Record<string, unknown>,
    weights: new Uint8Array(readFileSync(`${TEXT_ENCODER_DIR}/model.safetensors`)),
  };
}

const tinyWeights = parseSafetensors(tinyFiles().weights);
const tinyWeight = (name: string): Float32Array => {
  const entry = tinyWeights.tensors.get(name);
  if (!entry) throw new Error(`no weight ${name}`);
  return toFloat32(entry);
};

const sd = readGolden('sd/sd.safetensors');
const inputIds = goldenI32(sd, 'text.input_ids');
const promptEmbeds = goldenF32(sd, 'text.prompt_embeds');
const PROMPTS = 8;

async function encodeTiny(options: { precision?: Precision; clipSkip?: number; config?: Record<string, unknown> } = {}) {
  const files = tinyFiles();
  const model = readClipTextModel({ ...files, config: options.config ?? files.config });
  const encoder = await ClipTextEncoder.compile(await gpu(), model, {
    batch: PROMPTS,
    precision: options.precision,
    clipSkip: options.clipSkip,
  });
  try {
    assert.equal(encoder.outputShape, [PROMPTS, 77, 32]);
    const nodes = encoder.compiled.nodeList;
    console.log(`    dispatches per encode (${encoder.precision}, clip skip ${options.clipSkip ?? 0}): ${nodes.length}`);
    return { model, out: await encoder.encode(inputIds) };
  } finally {
    encoder.destroy();
  }
}

const model = suite('clip text model');

model('tiny SD text encoder: prompt_embeds of the 8 prompts match transformers (float64) within 1e-4', async () => {
  const { model, out } = await encodeTiny();
  assert.is(out.length, PROMPTS * 77 * 32);
  expectClose('text.prompt_embeds', out, promptEmbeds, TOLERANCE);
  // The float64 forward of this file against the same golden (stored as f32: both round alike), so
  // the reference the clip skip and gelu tests use is sound.
  const reference = clipReference(model.config, tinyWeight, inputIds, PROMPTS);
  expectClose('float64 forward here vs transformers', Float32Array.from(reference), promptEmbeds, 1e-6);
});

model('clip skip 1: the final LayerNorm of the hidden state before the last layer, against a float64 forward', async () => {
  const { model, out } = await encodeTiny({ clipSkip: 1 });
  const reference = Float32Array.from(clipReference(model.config, tinyWeight, inputIds, PROMPTS, 1));
  expectClose('clip skip 1', out, reference, TOLERANCE);
  // Not the unskipped output: the skip changed something.
  const unskipped = Float32Array.from(clipReference(model.config, tinyWeight, inputIds, PROMPTS, 0));
  let differs = 0;
  for (let i = 0; i < out.length; i++) differs = Math.max(differs, Math.abs(unskipped[i] - reference[i]));
  assert.ok(differs > 1e-2, 'clip skip 1 gives another output than clip skip 0');
  // Clip skip 2 of 2 layers: the embeddings themselves, normalised.
  const { out: embeddingsOnly } = await encodeTiny({ clipSkip: 2 });
  expectClose(
    'clip skip 2 (embeddings only)',
    embeddingsOnly,
    Float32Array.from(clipReference(model.config, tinyWeight, inputIds, PROMPTS, 2)),
    TOLERANCE,
  );
});

model("hidden_act 'gelu' (SD 2.x's encoder): the same weights through erf's gelu, against a float64 forward", async () => {
  const config = { ...tinyFiles().config, hidden_act: 'gelu' };
  const { model, out } = await encodeTiny({ config });
  assert.is(model.config.hiddenAct, 'gelu');
  expectClose('gelu text encoder', out, Float32Array.from(clipReference(model.config, tinyWeight, inputIds, PROMPTS)), TOLERANCE);
});

// Without shader-f16, 'f16' runs as 'f16-packed': f16_packed.test.ts.
model('f16 storage where the adapter has shader-f16: within 2e-3 of transformers', async () => {
  const real = await gpu();
  if (!real.device.features.has('shader-f16')) {
    console.log('    this adapter has no shader-f16: the f16 comparison needs one');
    return;
  }
  const { out } = await encodeTiny({ precision: 'f16' });
  expectClose('text.prompt_embeds at f16', out, promptEmbeds, F16_TOLERANCE);
});

model('SD 1.5 and SD 2.1 text encoder configs build (zero weights, no GPU) with transformers parameter counts', () => {
  const expected: Record<string, { parameters: number; layers: number; hidden: number; act: string }> = {
    sd15: { parameters: 123_060_480, layers: 12, hidden: 768, act: 'quick_gelu' },
    sd21: { parameters: 340_387_840, layers: 23, hidden: 1024, act: 'gelu' },
  };
  for (const [name, want] of Object.entries(expected)) {
    const config = parseClipTextConfig(JSON.parse(readFileSync(`${SD_CONFIGS}/${name}/text_encoder/config.json`, 'utf8')));
    const shapes = clipTextWeightShapes(config);
    const parameters = shapes.reduce((total, { shape }) => total + shape.reduce((a, b) => a * b, 1), 0);
    console.log(
      `    ${name}: ${config.numHiddenLayers} layers, hidden ${config.hiddenSize}, ${config.hiddenAct}: ${
        parameters.toLocaleString('en-US')
      } parameters in ${shapes.length} tensors`,
    );
    assert.is(parameters, want.parameters);
    assert.is(config.numHiddenLayers, want.layers);
    assert.is(config.hiddenAct, want.act);
    const zeros: WeightSource = {
      take: (weightName: string, ...accepted: number[][]) => ({ name: weightName, shape: accepted[0], data: new Float32Array(0) }),
    };
    for (const precision of ['f32', 'f16'] as const) {
      const graph = buildClipTextGraph(config, zeros, { batch: 2, precision });
      assert.equal(graph.tensor(LAST_HIDDEN_STATE).shape, [2, 77, want.hidden]);
      assert.is(graph.tensor(LAST_HIDDEN_STATE).dtype, 'f32');
      // Per layer: 2 LayerNorms, the fused q/k/v, attention, out_proj, fc1, fc2; plus embeddings and the final norm (and f16's cast).
      assert.is(graph.nodes.length, 7 * want.layers + 2 + (precision === 'f16' ? 1 : 0));
      // The token table in f32 (152 and 202 MB) is more than a binding is guaranteed to hold: bound in two parts.
      const tables = graph.nodes[0].inputs.slice(1, 5).filter((t) => t !== null);
      assert.is(tables.length, precision === 'f32' ? 2 : 1);
      for (const t of tables) assert.ok(byteSize(t!) <= GUARANTEED_BINDING_BYTES, `${t!.name} [${t!.shape}] fits one binding`);
      if (precision === 'f32') {
        console.log(`    ${name} f32 token table bound as ${tables.map((t) => `${t!.name} [${t!.shape}]`).join(', ')}`);
      }
    }
    const skipped = buildClipTextGraph(config, zeros, { batch: 1, clipSkip: 1 });
    assert.is(skipped.nodes.length, 7 * (want.layers - 1) + 2);
  }
});

model('bad configs are refused with the key named', async () => {
  const base = tinyFiles().config;
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, hidden_act: 'relu' }, 'hidden_act'],
    [{ ...base, hidden_size: 30 }, 'num_attention_heads'],
    [{ ...base, num_hidden_layers: 0 }, 'num_hidden_layers'],
    [{ ...base, vocab_size: 'many' }, 'vocab_size'],
    [{ ...base, layer_norm_eps: -1 }, 'layer_norm_eps'],
    [{ ...base, model_type: 'clip_vision_model' }, 'model_type'],
    [{ ...base, architectures: ['CLIPVisionModel'] }, 'architectures'],
    [{ ...base, rotary_embeddings: true }, 'rotary_embeddings'],
    [{ ...base, is_decoder: true }, 'is_decoder'],
    [{ ...base, pruned_heads: { '0': [1] } }, 'pruned_heads'],
  ];
  for (const [config, key] of cases) await refused(() => parseClipTextConfig(config), ModelConfigError, key);
  // What a file leaves out takes transformers' defaults.
  const defaults = parseClipTextConfig({});
  assert.equal(defaults, {
    vocabSize: 49408,
    hiddenSize: 512,
    intermediateSize: 2048,
    numHiddenLayers: 12,
    numAttentionHeads: 8,
    maxPositionEmbeddings: 77,
    hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5,
  });
});

model('weights: position_ids and a text_projection are ignored; a missing or an extra layer is named', async () => {
  const files = tinyFiles();
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, entry] of tinyWeights.tensors) {
    if (entry.dtype !== 'I64') tensors[name] = { dtype: 'F32', shape: entry.shape, data: toFloat32(entry) };
  }
  assert.is(tinyWeights.tensors.get('text_model.embeddings.position_ids')?.dtype, 'I64');
  // CLIPTextModelWithProjection's projection is not the text encoder's: left out, as position_ids (read by the golden run above).
  const withProjection = {
    ...tensors,
    'text_projection.weight': { dtype: 'F32' as const, shape: [32, 32], data: new Float32Array(32 * 32) },
  };
  readClipTextModel({ config: files.config, weights: serializeSafetensors(withProjection) });

  const missing = { ...tensors };
  delete missing['text_model.encoder.layers.1.mlp.fc2.weight'];
  const fewerLayers = { ...files.config, num_hidden_layers: 1 };
  for (
    const [weights, config, expected] of [
      [missing, files.config, 'text_model.encoder.layers.1.mlp.fc2.weight'],
      [tensors, fewerLayers, 'text_model.encoder.layers.1.'],
    ] as const
  ) {
    await refused(() => readClipTextModel({ config, weights: serializeSafetensors(weights) }), ModelWeightsError, expected);
  }
});

model('bad inputs: token ids outside the vocabulary, the wrong count, a clip skip past the layers', async () => {
  const files = tinyFiles();
  const tiny = readClipTextModel(files);
  const gpuNow = await gpu();
  await refused(
    () => ClipTextEncoder.compile(gpuNow, tiny, { batch: 1, clipSkip: 3 }),
    TextEncoderInputError,
    'clip skip must be an integer from 0 to 2',
  );
  const encoder = await ClipTextEncoder.compile(gpuNow, tiny, { batch: 1 });
  try {
    const ids = inputIds.slice(0, 77);
    ids[5] = 49408;
    await refused(
      () => encoder.encode(ids),
      TextEncoderInputError,
      'token id 49408 (prompt 0, position 5) is outside the vocabulary of 49408',
    );
    ids[5] = -1;
    await refused(() => encoder.encode(ids), TextEncoderInputError, 'token id -1');
    await refused(() => encoder.encode(inputIds), TextEncoderInputError, 'encode takes 1 prompts of 77 token ids (77), got 616');
    // A valid prompt afterwards still encodes, and as in the batch of 8.
    const first = await encoder.encode(inputIds.slice(0, 77));
    expectClose('prompt 0 alone', first, promptEmbeds.slice(0, 77 * 32), TOLERANCE);
  } finally {
    encoder.destroy();
  }
});

ops.run();
model.run();
