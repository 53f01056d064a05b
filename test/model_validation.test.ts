/** Configs and weights from strangers: every problem refused by name, before any GPU work. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSafetensors, serializeSafetensors, type TensorToWrite, toFloat32 } from '../src/io/safetensors.ts';
import { ModelConfigError, parseUNetConfig } from '../src/models/unet_2d_config.ts';
import { requiredWeights } from '../src/models/random_weights.ts';
import { readUNet } from '../src/models/unet_2d_model.ts';
import { ModelWeightsError } from '../src/models/weights.ts';
import { TINY_CONFIG, tinyModelFiles } from './util/tiny_model.ts';

const validation = suite('model validation');

function refusesConfig(change: Record<string, unknown>, pattern: RegExp) {
  const config = { ...TINY_CONFIG, ...change };
  try {
    parseUNetConfig(config);
    assert.unreachable(`config ${JSON.stringify(change)} should be refused`);
  } catch (error) {
    assert.instance(error, ModelConfigError);
    assert.match((error as Error).message, pattern);
    console.log(`    ${JSON.stringify(change)} -> ${(error as Error).message}`);
  }
}

validation('unsupported config options and values are refused by name', () => {
  refusesConfig({ down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'] }, /block type 'CrossAttnDownBlock2D' in down_block_types/);
  refusesConfig({ up_block_types: ['SkipUpBlock2D', 'UpBlock2D'] }, /'SkipUpBlock2D'/);
  refusesConfig({ time_embedding_type: 'fourier' }, /time_embedding_type = "fourier"/);
  refusesConfig({ resnet_time_scale_shift: 'scale_shift' }, /resnet_time_scale_shift/);
  refusesConfig({ class_embed_type: 'identity' }, /class_embed_type = "identity"/);
  refusesConfig({ num_class_embeds: 0 }, /num_class_embeds' must be a positive integer/);
  refusesConfig({ cross_attention_dim: 768 }, /unsupported option\(s\): cross_attention_dim/);
  refusesConfig({ norm_num_groups: 3 }, /block_out_channels 8 is not divisible by norm_num_groups 3/);
  refusesConfig({ attention_head_dim: 5 }, /do not split into heads of attention_head_dim 5/);
  refusesConfig({ block_out_channels: [8, -16] }, /block_out_channels must be a list of positive integers/);
  refusesConfig({ down_block_types: ['DownBlock2D'] }, /must list 2 blocks/);
  refusesConfig({ downsample_padding: 2 }, /downsample_padding must be 0 or 1/);
  refusesConfig({ _class_name: 'UNet2DConditionModel' }, /UNet2DConditionModel' is not supported/);
  assert.throws(() => parseUNetConfig([]), /expected a JSON object/);
});

/** The tiny model's weights with some tensors changed, dropped or added. */
function editedWeights(edit: (tensors: Record<string, TensorToWrite>) => void): Uint8Array {
  const file = parseSafetensors(tinyModelFiles().weights);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, entry] of file.tensors) tensors[name] = { dtype: 'F32', shape: entry.shape, data: toFloat32(entry) };
  edit(tensors);
  return serializeSafetensors(tensors);
}

function refusesWeights(edit: (tensors: Record<string, TensorToWrite>) => void, patterns: RegExp[]) {
  try {
    readUNet({ config: TINY_CONFIG, weights: editedWeights(edit) });
    assert.unreachable('the weights should be refused');
  } catch (error) {
    assert.instance(error, ModelWeightsError);
    const message = (error as Error).message;
    for (const p of patterns) assert.match(message, p);
    console.log(`    ${message.replace(/\n/g, '\n      ')}`);
  }
}

validation('missing, unexpected, mis-shaped and non-finite weights are all named in one error', () => {
  refusesWeights((t) => {
    delete t['down_blocks.0.resnets.0.conv1.weight'];
    t['down_blocks.0.resnets.0.conv2.bias'] = { dtype: 'F32', shape: [7], data: new Float32Array(7) };
    t['extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    const w = t['conv_in.weight'].data as Float32Array;
    w[5] = Number.NaN;
  }, [
    /missing weights \(1\):\n {2}down_blocks\.0\.resnets\.0\.conv1\.weight \[8,8,3,3\]/,
    /wrong shape \(1\):\n {2}down_blocks\.0\.resnets\.0\.conv2\.bias: \[7\], expected \[8\]/,
    /unexpected weights .*\(1\):\n {2}extra\.weight/,
    /NaN or Inf \(1\):\n {2}conv_in\.weight \(element 5 is NaN\)/,
  ]);
  refusesWeights((t) => {
    (t['time_embedding.linear_1.bias'].data as Float32Array)[0] = Number.POSITIVE_INFINITY;
  }, [/time_embedding\.linear_1\.bias \(element 0 is Infinity\)/]);
});

validation('legacy attention names (query/key/value/proj_attn) load like the modern ones', () => {
  const legacy = editedWeights((t) => {
    for (const name of Object.keys(t)) {
      const renamed = name.replace('.to_q.', '.query.').replace('.to_k.', '.key.').replace('.to_v.', '.value.').replace(
        '.to_out.0.',
        '.proj_attn.',
      );
      if (renamed !== name) {
        t[renamed] = t[name];
        delete t[name];
      }
    }
  });
  assert.ok([...parseSafetensors(legacy).tensors.keys()].some((k) => k.includes('.proj_attn.')));
  const model = readUNet({ config: TINY_CONFIG, weights: legacy });
  assert.is(model.config.attentionHeadDim, 8);
});

validation('the required weight list matches the shipped emoji32 checkpoint exactly', async () => {
  const { readFileSync } = await import('node:fs');
  const config = JSON.parse(readFileSync('weights/emoji32/config.json', 'utf8'));
  const file = parseSafetensors(new Uint8Array(readFileSync('weights/emoji32/diffusion_pytorch_model.safetensors')));
  const required = requiredWeights(config);
  assert.is(required.length, file.tensors.size);
  for (const { name, shape } of required) assert.equal(file.tensors.get(name)?.shape.join(), shape.join(), name);
  const params = required.reduce((sum, { shape }) => sum + shape.reduce((a, b) => a * b, 1), 0);
  console.log(`    emoji32: ${required.length} tensors, ${(params / 1e6).toFixed(2)}M parameters`);
  assert.is(Math.round(params / 1e4), 895);
});

validation.run();
