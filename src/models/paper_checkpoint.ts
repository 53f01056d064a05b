/**
 * Checkpoints of the DDIM paper's own code (ermongroup/ddim, `models/diffusion.py`, `Model`) as
 * a diffusers model folder: config.json for UNet2DModel, the weights renamed to diffusers' names
 * (safetensors), and a DDIMScheduler config with that code's beta schedule.
 *
 * Two kinds of file are read: a training checkpoint, `ckpt.pth` = [model, optimizer, epoch, step,
 * ema] with DataParallel's `module.` prefix (the EMA weights by default, as that code samples with
 * them), and a bare state dict (`model.ckpt`, as the pretrained CIFAR-10 and LSUN models come),
 * in torch's zip or legacy format. The mapping is one-to-one (checked against the paper's code to
 * 3e-7); `../shared/golden/checkpoints/README.md` lists it.
 *
 * Pure: no file system, so it runs in every runtime; `sample.ts convert` writes the result.
 */
import { parse as parseYaml } from 'yaml';
import type { SafetensorsFile, TensorEntry } from '../io/safetensors.ts';
import { describeValue } from '../io/pickle.ts';
import { readTorchFile, stateDictEntries } from '../io/torch.ts';
import { toSafetensors } from '../io/weights_file.ts';
import { readUNet } from './unet_2d_model.ts';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface ConvertedModel {
  /** config.json of a diffusers UNet2DModel. */
  config: Record<string, unknown>;
  /** scheduler_config.json of a diffusers DDIMScheduler. */
  schedulerConfig: Record<string, unknown>;
  /** diffusion_pytorch_model.safetensors, float32. */
  weights: Uint8Array;
  /** Which weights were taken, and anything the user should know. */
  notes: string[];
}

export interface PaperConfig {
  unet: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  levels: number;
  notes: string[];
}

/** Largest config.yml read: they are a few hundred bytes. */
const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Converts a checkpoint of the paper's code and its config.yml. `ema` (default true) takes the EMA
 * weights of a training checkpoint; false takes the raw ones.
 */
export async function convertPaperCheckpoint(
  checkpoint: Uint8Array,
  configYaml: string,
  options: { ema?: boolean } = {},
): Promise<ConvertedModel> {
  const config = parsePaperConfig(configYaml);
  const { value } = await readTorchFile(checkpoint);
  const picked = pickStateDict(value, options.ema ?? true);
  const renamed = renamePaperWeights(picked.file, config.levels);
  const weights = toSafetensors(renamed, { format: 'pt', converted_from: `DDIM paper checkpoint, ${picked.which}` });
  try {
    readUNet({ config: config.unet, weights }); // every weight against the config, as the engine will load it
  } catch (error) {
    throw new CheckpointError(`the checkpoint does not fit its config.yml: ${(error as Error).message}`);
  }
  return { config: config.unet, schedulerConfig: config.scheduler, weights, notes: [...picked.notes, ...config.notes] };
}

// ---------------------------------------------------------------------------------------------
// config.yml

/** The paper's config.yml as diffusers' UNet2DModel and DDIMScheduler configs. */
export function parsePaperConfig(text: string): PaperConfig {
  if (text.length > MAX_CONFIG_BYTES) throw new CheckpointError(`config.yml is ${text.length} bytes, more than a config holds`);
  let raw: unknown;
  try {
    // YAML 1.1, as PyYAML (which that code uses) reads it; aliases bounded against expansion bombs.
    raw = parseYaml(text, { version: '1.1', maxAliasCount: 100 });
  } catch (error) {
    throw new CheckpointError(`config.yml is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const root = section(raw, '', 'the file');
  const data = section(root.data, 'data', 'data');
  const model = section(root.model, 'model', 'model');
  const diffusion = section(root.diffusion, 'diffusion', 'diffusion');
  const notes: string[] = [];

  const imageSize = positiveInt(data.image_size, 'data.image_size');
  const ch = positiveInt(model.ch, 'model.ch');
  const chMult = intList(model.ch_mult, 'model.ch_mult');
  const numResBlocks = positiveInt(model.num_res_blocks, 'model.num_res_blocks');
  const attnResolutions = model.attn_resolutions == null ? [] : intList(model.attn_resolutions, 'model.attn_resolutions', true);
  const inChannels = positiveInt(model.in_channels ?? data.channels ?? 3, 'model.in_channels');
  const outChannels = positiveInt(model.out_ch ?? inChannels, 'model.out_ch');
  if (model.resamp_with_conv === false) {
    throw new CheckpointError(
      'config.yml: model.resamp_with_conv is false (average-pool down, plain nearest up), which diffusers UNet2DModel cannot express',
    );
  }
  if (model.type !== undefined && model.type !== 'simple' && model.type !== 'bayesian') {
    throw new CheckpointError(`config.yml: model.type '${String(model.type)}' is not the paper's 'simple' model`);
  }
  if (data.logit_transform === true) notes.push('data.logit_transform is on: images are in logit space, which the engine does not undo');
  if (data.rescaled === false) notes.push("data.rescaled is off: the model works on images in [0, 1], not the engine's [-1, 1]");

  const downTypes: string[] = [];
  let resolution = imageSize;
  for (let level = 0; level < chMult.length; level++) {
    downTypes.push(attnResolutions.includes(resolution) ? 'AttnDownBlock2D' : 'DownBlock2D');
    if (level < chMult.length - 1) resolution = Math.floor(resolution / 2);
  }
  const unet = {
    _class_name: 'UNet2DModel',
    sample_size: imageSize,
    in_channels: inChannels,
    out_channels: outChannels,
    block_out_channels: chMult.map((m) => ch * m),
    down_block_types: downTypes,
    up_block_types: [...downTypes].reverse().map((t) => t.replace('Down', 'Up')),
    layers_per_block: numResBlocks,
    // The paper's Normalize: GroupNorm(32, eps 1e-6); one attention head; sin-then-cos timestep
    // embedding with log(10000) / (half - 1); asymmetric (0, 1, 0, 1) padding before the strided conv.
    norm_num_groups: 32,
    norm_eps: 1e-6,
    attention_head_dim: null,
    flip_sin_to_cos: false,
    freq_shift: 1,
    downsample_padding: 0,
    act_fn: 'silu',
    time_embedding_type: 'positional',
    add_attention: true,
    mid_block_scale_factor: 1,
    center_input_sample: false,
  };
  return { unet, scheduler: schedulerFor(diffusion, notes), levels: chMult.length, notes };
}

/** The code's get_beta_schedule as a DDIMScheduler config (its sampler: no clipping, ᾱ = 1 after the last step). */
function schedulerFor(diffusion: Record<string, unknown>, notes: string[]): Record<string, unknown> {
  const T = positiveInt(diffusion.num_diffusion_timesteps, 'diffusion.num_diffusion_timesteps');
  const schedule = diffusion.beta_schedule;
  const base = {
    _class_name: 'DDIMScheduler',
    num_train_timesteps: T,
    clip_sample: false,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: 'epsilon',
  };
  const start = schedule === 'jsd' ? 0 : finite(diffusion.beta_start, 'diffusion.beta_start');
  const end = schedule === 'jsd' ? 0 : finite(diffusion.beta_end, 'diffusion.beta_end');
  const linspace = (a: number, b: number) =>
    Array.from({ length: T }, (_, i) => (T === 1 ? a : i === T - 1 ? b : i * ((b - a) / (T - 1)) + a));
  switch (schedule) {
    case 'linear':
      return { ...base, beta_schedule: 'linear', beta_start: start, beta_end: end };
    case 'quad': // linspace(√start, √end)², which diffusers calls scaled_linear
      return { ...base, beta_schedule: 'scaled_linear', beta_start: start, beta_end: end };
    case 'const':
      return { ...base, trained_betas: new Array(T).fill(end) };
    case 'sigmoid':
      return { ...base, trained_betas: linspace(-6, 6).map((x) => (1 / (Math.exp(-x) + 1)) * (end - start) + start) };
    case 'jsd': // 1/T, 1/(T-1), ..., 1
      notes.push(
        "the 'jsd' schedule ends with beta = 1 (ᾱ = 0 at the last timestep), where an eps model gives no x0: the engine refuses a run whose timesteps reach it (the trailing spacing does)",
      );
      return { ...base, trained_betas: linspace(T, 1).map((v) => 1 / v) };
    default:
      throw new CheckpointError(
        `config.yml: diffusion.beta_schedule '${String(schedule)}' is not one of the code's linear, quad, const, jsd, sigmoid`,
      );
  }
}

function section(value: unknown, path: string, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError(
      `config.yml: ${path ? `'${path}'` : what} must be a mapping (the paper's config.yml layout), not ${typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

function positiveInt(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new CheckpointError(`config.yml: ${key} must be a positive integer, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

function finite(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new CheckpointError(`config.yml: ${key} must be a number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function intList(value: unknown, key: string, allowEmpty = false): number[] {
  if (!Array.isArray(value) || (!allowEmpty && value.length === 0) || value.length > 16) {
    throw new CheckpointError(`config.yml: ${key} must be a list of positive integers, got ${JSON.stringify(value)}`);
  }
  return value.map((v, i) => positiveInt(v, `${key}[${i}]`));
}

// ---------------------------------------------------------------------------------------------
// Which weights

/** The model's state dict: a bare one as it is; of a training checkpoint the EMA (or raw) weights. */
export function pickStateDict(value: unknown, ema: boolean): { file: SafetensorsFile; which: string; notes: string[] } {
  if (Array.isArray(value)) {
    if (value.length < 4 || !(value[0] instanceof Map)) {
      throw new CheckpointError(`the checkpoint is a list of ${value.length} that is not [model, optimizer, epoch, step(, ema)]`);
    }
    const [, , epoch, step] = value;
    const at = `epoch ${describeValue(epoch).replace('number ', '')}, step ${describeValue(step).replace('number ', '')}`;
    if (!ema) {
      return {
        file: stripModulePrefix(stateDictEntries(value[0], 'the model state')),
        which: `raw weights (${at})`,
        notes: [`took the raw (non-EMA) weights of a training checkpoint (${at})`],
      };
    }
    if (value.length < 5) {
      throw new CheckpointError(
        'the training checkpoint has no EMA weights (it was trained with model.ema off): pass --no-ema for its raw weights',
      );
    }
    return {
      file: stripModulePrefix(stateDictEntries(value[4], 'the EMA state')),
      which: `EMA weights (${at})`,
      notes: [`took the EMA weights of a training checkpoint (${at}), as the paper's code samples with; --no-ema takes the raw ones`],
    };
  }
  if (value instanceof Map) {
    const notes = ema ? [] : ['--no-ema: a bare state dict holds one set of weights, which were taken'];
    return { file: stripModulePrefix(stateDictEntries(value, 'the checkpoint')), which: 'state dict', notes };
  }
  throw new CheckpointError(`the checkpoint holds ${describeValue(value)}, neither a state dict nor a training checkpoint`);
}

function stripModulePrefix(file: SafetensorsFile): SafetensorsFile {
  const names = [...file.tensors.keys()];
  if (names.length === 0 || !names.every((n) => n.startsWith('module.'))) return file;
  return {
    tensors: new Map([...file.tensors].map(([name, entry]) => [name.slice(7), { ...entry, name: name.slice(7) }])),
    metadata: file.metadata,
  };
}

// ---------------------------------------------------------------------------------------------
// Names

const RESNET: Record<string, string> = {
  norm1: 'norm1',
  conv1: 'conv1',
  norm2: 'norm2',
  conv2: 'conv2',
  temb_proj: 'time_emb_proj',
  nin_shortcut: 'conv_shortcut',
};
const ATTENTION: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };

/** The diffusers name of one of the paper's weights, or undefined when it has none. */
export function diffusersName(name: string, levels: number): string | undefined {
  const fixed: Record<string, string> = {
    'temb.dense.0': 'time_embedding.linear_1',
    'temb.dense.1': 'time_embedding.linear_2',
    conv_in: 'conv_in',
    conv_out: 'conv_out',
    norm_out: 'conv_norm_out',
  };
  const m = /^(.*)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const [, module, param] = m;
  if (Object.hasOwn(fixed, module)) return `${fixed[module]}.${param}`;
  const part = (kind: 'resnets' | 'attentions', inner: string) => {
    const table = kind === 'resnets' ? RESNET : ATTENTION;
    return Object.hasOwn(table, inner) ? `${kind}.%.${table[inner]}.${param}` : undefined;
  };
  let match = /^(down|up)\.(\d+)\.(block|attn)\.(\d+)\.(\w+)$/.exec(module);
  if (match) {
    const [, path, level, kind, index, inner] = match;
    const block = blockName(path, Number(level), levels);
    const rest = part(kind === 'block' ? 'resnets' : 'attentions', inner);
    return block && rest ? `${block}.${rest.replace('%', index)}` : undefined;
  }
  match = /^(down|up)\.(\d+)\.(downsample|upsample)\.conv$/.exec(module);
  if (match) {
    const [, path, level, kind] = match;
    const block = blockName(path, Number(level), levels);
    if (!block || (path === 'down') !== (kind === 'downsample')) return undefined;
    return `${block}.${kind === 'downsample' ? 'downsamplers' : 'upsamplers'}.0.conv.${param}`;
  }
  match = /^mid\.(block_1|attn_1|block_2)\.(\w+)$/.exec(module);
  if (match) {
    const [, which, inner] = match;
    const rest = which === 'attn_1' ? part('attentions', inner) : part('resnets', inner);
    return rest ? `mid_block.${rest.replace('%', which === 'block_2' ? '1' : '0')}` : undefined;
  }
  return undefined;
}

/** down.i is down_blocks.i; up.i is up_blocks.(L-1-i), as the paper's up path counts from the bottom. */
function blockName(path: string, level: number, levels: number): string | undefined {
  if (level >= levels) return undefined;
  return path === 'down' ? `down_blocks.${level}` : `up_blocks.${levels - 1 - level}`;
}

/** The paper's weights under diffusers' names; attention's 1x1 convs become linear weights. */
export function renamePaperWeights(file: SafetensorsFile, levels: number): SafetensorsFile {
  const tensors = new Map<string, TensorEntry>();
  const unknown: string[] = [];
  for (const [name, entry] of file.tensors) {
    if (name === 'logvar') continue; // the 'bayesian' model's learned variance: not part of eps
    const renamed = diffusersName(name, levels);
    if (!renamed) {
      unknown.push(name);
      continue;
    }
    const isAttention = /\.(to_[qkv]|to_out\.0)\.weight$/.test(renamed);
    const shape = isAttention && entry.shape.length === 4 && entry.shape[2] === 1 && entry.shape[3] === 1
      ? entry.shape.slice(0, 2)
      : entry.shape;
    tensors.set(renamed, { ...entry, name: renamed, shape });
  }
  if (unknown.length) {
    throw new CheckpointError(
      `${unknown.length} weight(s) are not those of the paper's model with ${levels} levels: ${unknown.slice(0, 8).join(', ')}${
        unknown.length > 8 ? ', ...' : ''
      }`,
    );
  }
  return { tensors, metadata: {} };
}
