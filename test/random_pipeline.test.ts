/**
 * What the full-size measurements stand on, without a GPU: random weights files (F32 as the writer
 * lays them out, F16 rounded exactly as float32ToFloat16 does), Stable Diffusion folders made from
 * configs (the published parameter counts, SD 2.1's pad token), the in-place check for NaN and Inf,
 * the fast f32 -> f16 conversion the uploads use, and the benchmark's command line for SD layouts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseArgs } from '../scripts/bench.ts';
import { readStableDiffusionConfigs, readTokenizerDir } from '../src/fs/config_dir.ts';
import { float32ArrayToFloat16, float32ToFloat16 } from '../src/io/half.ts';
import { parseSafetensors, serializeSafetensors, type TensorEntry, toFloat32 } from '../src/io/safetensors.ts';
import { randomStableDiffusionFiles } from '../src/models/random_pipeline.ts';
import {
  randomSafetensors,
  requiredAutoencoderWeights,
  requiredClipTextWeights,
  requiredConditionalUNetWeights,
} from '../src/models/random_weights.ts';
import { firstNonFinite, type WeightSource } from '../src/models/weights.ts';
import { CompiledGraph } from '../src/graph/executor.ts';
import { byteSize, type Graph } from '../src/graph/graph.ts';
import { buildClipTextGraph } from '../src/models/clip_text_model.ts';
import { parseClipTextConfig } from '../src/models/clip_text_config.ts';
import { buildConditionalUNetGraph } from '../src/models/unet_2d_condition.ts';
import { parseConditionalUNetConfig } from '../src/models/unet_2d_condition_config.ts';
import { readTextToImageModel } from '../src/text_to_image_pipeline.ts';

const test = suite('random pipeline');
const parameters = (weights: { shape: number[] }[]) => weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
const TINY_SD = '../shared/golden/sd/tiny-sd';

test('random weights: F32 laid out as serializeSafetensors writes it, F16 the same values rounded to nearest even', () => {
  const weights = requiredConditionalUNetWeights(readStableDiffusionConfigs(TINY_SD).unet);
  const f32 = randomSafetensors(weights, 7);
  const parsed = parseSafetensors(f32);
  const rewritten = serializeSafetensors(
    Object.fromEntries([...parsed.tensors].map(([name, e]) => [name, { dtype: 'F32' as const, shape: e.shape, data: toFloat32(e) }])),
  );
  assert.equal(f32, rewritten, 'the same bytes as the writer gives');
  const f16 = parseSafetensors(randomSafetensors(weights, 7, { dtype: 'F16' }));
  let mismatches = 0;
  let values = 0;
  for (const [name, entry] of parsed.tensors) {
    const half = f16.tensors.get(name)!;
    assert.is(half.dtype, 'F16');
    const single = toFloat32(entry);
    const bits = new Uint16Array(half.bytes.slice().buffer);
    for (let i = 0; i < single.length; i++) if (bits[i] !== float32ToFloat16(single[i])) mismatches++;
    values += single.length;
  }
  console.log(`    ${values} values, ${mismatches} not float32ToFloat16 of the F32 file's`);
  assert.is(mismatches, 0);
  assert.not.equal(randomSafetensors(weights, 8), f32, 'another seed, other values');
});

test("the published configs' parameter counts: SD 1.5 UNet, CLIP text encoder, VAE", () => {
  const sd15 = readStableDiffusionConfigs('../shared/golden/sd/configs/sd15');
  assert.is(parameters(requiredConditionalUNetWeights(sd15.unet)), 859_520_964);
  assert.is(parameters(requiredClipTextWeights(sd15.textEncoder)), 123_060_480);
  assert.is(parameters(requiredAutoencoderWeights(sd15.vae)), 83_653_863);
  const sd21 = readStableDiffusionConfigs('../shared/golden/sd/configs/sd21');
  assert.is(parameters(requiredConditionalUNetWeights(sd21.unet)), 865_910_724);
});

test('a random Stable Diffusion folder reads as a downloaded one; a pad token override takes (SD 2.x pads with !)', () => {
  const configs = readStableDiffusionConfigs(TINY_SD);
  const tokenizer = readTokenizerDir(`${TINY_SD}/tokenizer`);
  const sd1 = readTextToImageModel(randomStableDiffusionFiles(configs, { tokenizer, dtype: 'F16' }));
  assert.is(sd1.tokenizer.padToken, '<|endoftext|>');
  assert.is(sd1.unet.file.tensors.values().next().value!.dtype, 'F16');
  const sd2 = readTextToImageModel(randomStableDiffusionFiles(configs, { tokenizer, padToken: '!' }));
  assert.is(sd2.tokenizer.padToken, '!');
  assert.is(sd2.tokenizer.padId, 0);
  assert.is(sd2.textEncoder.file.tensors.values().next().value!.dtype, 'F32');
});

test('SD 1.5 at 512x512 and SD 2.1 at 768x768, batch 2, f16 and f32: the UNet and text encoder fit WebGPU default limits', () => {
  // Shapes only: values are never asked for (each weight would be zeros).
  const shapes: WeightSource = {
    take: (name, ...s) => ({
      name,
      shape: s[0],
      get data() {
        return new Float32Array(s[0].reduce((a, b) => a * b, 1));
      },
    }),
  };
  const limits = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20, maxComputeWorkgroupsPerDimension: 65535 };
  const largest = (graph: Graph) =>
    graph.nodes.reduce((most, n) => [...n.inputs, ...n.outputs].reduce((m, t) => Math.max(m, t ? byteSize(t) : 0), most), 0);
  for (const [name, pixels] of [['sd15', 512], ['sd21', 768]] as const) {
    const configs = readStableDiffusionConfigs(`../shared/golden/sd/configs/${name}`);
    for (const precision of ['f16', 'f32'] as const) {
      const sizes: string[] = [];
      for (const kernels of ['registers', 'tiled'] as const) {
        const unet = buildConditionalUNetGraph(parseConditionalUNetConfig(configs.unet), shapes, {
          batch: 2,
          height: pixels / 8,
          width: pixels / 8,
          precision,
          kernels,
        });
        CompiledGraph.checkLimits(unet, limits);
        sizes.push(`unet (${kernels}) ${(largest(unet) / 2 ** 20).toFixed(1)} MiB`);
      }
      const text = buildClipTextGraph(parseClipTextConfig(configs.textEncoder), shapes, { batch: 1, precision });
      CompiledGraph.checkLimits(text, limits);
      sizes.push(`text encoder ${(largest(text) / 2 ** 20).toFixed(1)} MiB`);
      console.log(`    ${name} ${pixels}x${pixels} ${precision}, largest tensor: ${sizes.join(', ')}`);
    }
  }
});

test('firstNonFinite finds NaN and Inf in place (f32, f16, bf16) and in unaligned views', () => {
  const entry = (dtype: TensorEntry['dtype'], bytes: Uint8Array): TensorEntry => ({ name: 'w', dtype, shape: [bytes.length], bytes });
  const f32 = new Float32Array([1, 2, -Infinity, NaN]);
  assert.equal(firstNonFinite(entry('F32', new Uint8Array(f32.buffer))), { index: 2, value: -Infinity });
  // One byte in: read through a copy.
  const shifted = new Uint8Array(17);
  shifted.set(new Uint8Array(new Float32Array([0, 5, NaN, 1]).buffer), 1);
  const unaligned = firstNonFinite(entry('F32', shifted.subarray(1)));
  assert.is(unaligned?.index, 2);
  assert.ok(Number.isNaN(unaligned?.value));
  assert.equal(firstNonFinite(entry('F16', new Uint8Array(new Uint16Array([0x3c00, 0x7bff, 0x7c00]).buffer))), {
    index: 2,
    value: Infinity,
  });
  assert.equal(firstNonFinite(entry('BF16', new Uint8Array(new Uint16Array([0x3f80, 0xff80]).buffer))), { index: 1, value: -Infinity });
  assert.is(firstNonFinite(entry('F16', new Uint8Array(new Uint16Array([0x3c00, 0xfbff]).buffer))), undefined, '-65504 is finite');
});

test('float32ArrayToFloat16 (the fast path) is float32ToFloat16 at every exponent, around every rounding tie', () => {
  // Each sign and exponent with low mantissa bits at and around the tie of f16 rounding (bit 12).
  const lows = [0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fffff, 0x7fe000, 0x7ff000, 0x7fefff, 0x7ff001];
  const bits = new Uint32Array(512 * lows.length * 8);
  let n = 0;
  for (let high = 0; high < 512; high++) {
    for (const low of lows) {
      for (let m = 0; m < 8; m++) bits[n++] = ((high << 23) | ((m << 20) & 0x700000) | low) >>> 0;
    }
  }
  const values = new Float32Array(bits.buffer);
  const halves = float32ArrayToFloat16(values);
  let mismatches = 0;
  for (let i = 0; i < values.length; i++) if (halves[i] !== float32ToFloat16(values[i])) mismatches++;
  assert.is(mismatches, 0, `${mismatches} of ${values.length} patterns differ`);
});

test('bench: --layout sd15 | sd21 take --height, --width, --default-limits and --peers; the UNet2DModel layouts not the first three', () => {
  const args = parseArgs(['--layout', 'sd15', '--height', '64', '--width', '128', '--default-limits', '--precision', 'f16']);
  assert.equal([args.layout, args.height, args.width, args.defaultLimits, args.precision], ['sd15', 64, 128, true, 'f16']);
  assert.throws(() => parseArgs(['--layout', 'sdxl']), /cifar10 or celebahq \(UNet2DModel\) or sd15 or sd21/);
  assert.throws(() => parseArgs(['--layout', 'cifar10', '--height', '64']), /--height goes with --layout sd15 or sd21/);
  assert.throws(() => parseArgs(['--default-limits']), /--default-limits goes with/);
  // With --peers an SD layout runs one component beside ONNX Runtime (scripts/peers/sd_peers.ts).
  assert.ok(parseArgs(['--layout', 'sd15', '--peers']).peers?.length);
  assert.throws(() => parseArgs(['--layout', 'sd15', '--component', 'unet']), /--component goes with/);
  assert.throws(() => parseArgs(['--layout', 'sd21', '--batch', '2']), /batch 2/);
});

test.run();
