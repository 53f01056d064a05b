/**
 * The command line's flags: one table of options per subcommand, parsed strictly with node:util's
 * parseArgs, then every value checked for its type and range. Nothing here reads a file or
 * touches the GPU; checks that need the model (steps against its schedule, tensor shapes) come
 * later, still before any GPU work (see commands.ts).
 */
import { parseArgs } from 'node:util';
import type { Backend } from '../gpu/device.ts';
import { parseByteSize } from '../gpu/memory_budget.ts';
import { type Precision, PRECISIONS } from '../gpu/shader_source.ts';
import { INVERSION_MODES, type InversionMode, type TimestepSpacing } from '../sampler/schedule.ts';
import { UserError } from './errors.ts';

/** A user error with an optional second line telling what to do about it. */
export class CliError extends UserError {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

export const COMMANDS = [
  'sample',
  'encode',
  'decode',
  'interpolate',
  'eps',
  'convert',
  'vae-encode',
  'vae-decode',
  'encode-prompt',
] as const;
export type CommandName = (typeof COMMANDS)[number];

export const SPACINGS: readonly TimestepSpacing[] = ['uniform', 'quad', 'leading', 'trailing', 'linspace'];
const BACKENDS: readonly Backend[] = ['auto', 'native', 'dawn'];

/** Images per --shard block: fixed, so that which process makes which image never depends on --batch. */
export const FID_BLOCK = 100;

// ---------------------------------------------------------------------------------------------
// Usage texts

const PROGRAM = 'sample';

const RUN_FORMS = `run it as: npm run sample -- [COMMAND] [options]     (Node, in the repository)
           deno run -P sample.ts [COMMAND] [options]  (Deno; -P: the permissions in deno.json)
           npx ddim-webgpu [COMMAND] [options]        (the installed npm package)`;

const GPU_MEMORY_HELP = `  --gpu-memory SIZE   the GPU memory the model may take, e.g. 6G or 512M (WebGPU reports none): a
                      model needing more is refused before it is uploaded, a text-to-image run's
                      VAE before the first step (default: no budget)
  --verbose           say which adapter runs it, its limits, and what its driver printed while it
                      was found (Dawn's notes on lowered limits, kept off stderr otherwise)`;

const COMMON_HELP = `  --model DIR         diffusers UNet2DModel folder: config.json + diffusion_pytorch_model.safetensors or .bin
                      (+ scheduler_config.json), or unet/ + scheduler/ (default: the bundled weights/emoji32)
  --batch B           images per UNet forward (default: min(number of images, 16))
  --backend B         auto | native | dawn: navigator.gpu or Dawn's 'webgpu' package (default: auto)
  --precision P       f32 | f16 | f16-packed: how the UNet's weights and activations are stored on the
                      GPU; f16 halves its memory where the adapter has shader-f16, and is f16-packed
                      elsewhere: f16 weights, f32 activations, half the weight memory (default: f32)
${GPU_MEMORY_HELP}
  -h, --help          this help`;

const SKIP_HELP = `  --skip SPACING      timestep spacing: uniform | quad | leading | trailing | linspace (default: the
                      scheduler config's timestep_spacing when it names one, else uniform)`;

const CLASS_HELP = `  --class K           class-conditional models: the class label of every image, or a comma list
                      with one label per image (0,3,3,7)`;

const DDIM_HELP = (defaultSteps: number) =>
  `  --steps S           DDIM steps, 1 to the model's training timesteps (default: ${defaultSteps})
${SKIP_HELP}
${CLASS_HELP}`;

const SCALE_HELP = `  --scale K           integer upscaling of the PNG (default: 2 for images up to 64 px, else 1)`;

export const USAGE: Record<CommandName, string> = {
  'encode-prompt': `usage: ${PROGRAM} encode-prompt --model SD_DIR --prompt "..." [--prompt "..." ...] [--clip-skip N] [--out F]

Runs a text-to-image model's tokenizer and text encoder on prompts.
  --prompt TEXT       a prompt; repeat for more
  --clip-skip N       the text encoder's output N layers before the last, through its final
                      LayerNorm (diffusers' clip_skip; default 0)
  --out FILE          safetensors (default: prompt.safetensors): 'input_ids' i32 [B, 77] and
                      'prompt_embeds' f32 [B, 77, hidden]
  --model DIR         a Stable Diffusion pipeline folder (model_index.json, text_encoder/, tokenizer/)
  --backend B         auto | native | dawn (default: auto)
  --precision P       f32 | f16 | f16-packed (default: f32)
${GPU_MEMORY_HELP}`,
  'vae-encode': `usage: ${PROGRAM} vae-encode --model DIR --in FILE [--out latents.safetensors] [options]

Runs a latent model's autoencoder encoder (its vae/ or vqvae/ folder).
  --in FILE           the images: a PNG, or safetensors with key 'image', f32 [N, 3, H, W] in [-1, 1]
                      (H and W multiples of the autoencoder's downscale factor)
  --out FILE          safetensors (default: latents.safetensors): AutoencoderKL writes 'mean' and
                      'logvar' (the latent distribution, unscaled); VQModel writes 'latents' (before
                      quantization)
  --model DIR         a pipeline folder with model_index.json and a vae/ or vqvae/
  --batch B           images per pass (default: all that fit the adapter's limits)
  --backend B         auto | native | dawn (default: auto)
  --precision P       f32 | f16 | f16-packed: how the weights are stored (f16 halves them; an
                      autoencoder whose config sets force_upcast keeps f32 activations, so f16 runs
                      as f16-packed there) (default: f32)
${GPU_MEMORY_HELP}`,
  'vae-decode': `usage: ${PROGRAM} vae-decode --model DIR --in FILE [--out image.safetensors] [--png FILE] [options]

Runs a latent model's autoencoder decoder (its vae/ or vqvae/ folder).
  --in FILE           safetensors with key 'z', f32 [N, C, h, w]: exactly what the decoder's
                      post_quant_conv (VQ: its quantizer) receives, not scaled
  --out FILE          safetensors with 'image', f32 [N, 3, H, W], not clamped (default: image.safetensors)
  --png FILE          the images as a PNG grid as well
  --no-quantize       VQModel: decode without snapping to the codebook (diffusers' force_not_quantize)
  --model DIR         a pipeline folder with model_index.json and a vae/ or vqvae/
  --batch B           images per pass (default: all that fit the adapter's limits)
  --backend B         auto | native | dawn (default: auto)
  --precision P       f32 | f16 | f16-packed: how the weights are stored (f16 halves them; an
                      autoencoder whose config sets force_upcast keeps f32 activations, so f16 runs
                      as f16-packed there) (default: f32)
${GPU_MEMORY_HELP}`,
  sample: `usage: ${PROGRAM} [sample] [--n N] [--steps S] [--eta E] [--seed SEED] [--out grid.png] [options]
       ${PROGRAM} [sample] --n 50000 --out-dir DIR [--shard K/N] [options]   (numbered PNGs, e.g. for FID)
       ${PROGRAM} encode|decode|interpolate|eps|convert [options]   (${PROGRAM} COMMAND --help for each)

Generates images with DDIM and writes them as one PNG grid.
  --n N               number of images (default: 16, or 2 on a software adapter; taken from --xT when given)
  --steps S           DDIM steps, 1 to the model's training timesteps (default: 50)
  --eta E             0 (deterministic DDIM) to 1 (DDPM-like) (default: 0)
  --sigma-hat         the paper's σ̂ sampler (Table 1's last row: x0 clipped, the DDPM posterior mean,
                      variance 1 - ᾱ_t/ᾱ_prev, no noise on the last step) instead of DDIM's η
${SKIP_HELP}
${CLASS_HELP}
  --clip              clip each x0 prediction to the config's clip_sample_range (default: as the
                      scheduler config says)
  --seed SEED         integer from 0 to 2^53-1 seeding the latents and the noise (default: 0)
  --out FILE          the PNG grid (default: samples.png)
  --prompt TEXT       text-to-image models (Stable Diffusion folders): a prompt for every image, or
                      repeated, one per image
  --negative-prompt T one for all, or one per prompt (default: empty)
  --guidance G        classifier-free guidance scale (default: 7.5; 1 or less runs the prompt alone)
  --clip-skip N       the text encoder's output N layers before the last (default: 0)
  --init-image F      img2img: a PNG, or safetensors 'image' [N, 3, H, W] in [-1, 1]; with
  --strength S        the part of the schedule that runs, (0, 1] (default: 0.8); --xT gives its noise
  --height H          latent models: the image size in pixels (default: the UNet's sample_size
  --width W           times the autoencoder's downscale factor)
  --out-tensor FILE   also write the images as safetensors, key 'x0', f32 [N,C,H,W] in [-1, 1]
  --xT FILE           start from these latents: safetensors, key 'xT', f32 [N,C,H,W]
  --noise FILE        the noise of every step (with --eta > 0 or --sigma-hat): key 'noise', f32 [S,N,C,H,W]
  --out-dir DIR       instead of a grid, image i as DIR/<i, 6 digits>.png (FID mode). Rerun the same
                      command to resume: images already there are kept, none is made twice, and a
                      half-written file is never counted. Image i is the same whatever --batch or --shard
  --shard K/N         with --out-dir: this process makes blocks K, K+N, K+2N, ... of ${FID_BLOCK} images
                      (K from 0 to N-1), so N processes or machines split one run
  --save-latents      with --out-dir: also each image's starting latent, DIR/<i>.xT.safetensors
  --profile           time every UNet node of every step (GPU timestamps where the adapter has them)
                      and print the time per op kind and the slowest nodes to stderr
  --trace FILE        also write that profile as a Chrome trace (chrome://tracing, ui.perfetto.dev)
${SCALE_HELP}
${COMMON_HELP}
commands:
  sample              (the default) generate images
  encode              images -> their DDIM latents
  decode              latents -> images
  interpolate         spherical interpolation between the latents of two seeds, decoded
  eps                 the UNet's noise prediction for given inputs
  convert             a DDIM paper checkpoint, or a .bin model folder, into a safetensors model folder
${RUN_FORMS}`,
  encode: `usage: ${PROGRAM} encode --image a.png [--image b.png ...] [--steps S] [--out latent.safetensors] [options]

Encodes images into their DDIM latents x_T (the deterministic ODE run forward). Each PNG must be
the model's size; transparent pixels are composited over white.
  --image FILE        a PNG to encode; repeat for more
  --out FILE          the latents: safetensors, key 'xT', f32 [N,C,H,W] (default: latent.safetensors)
  --inversion MODE    paper (default: ε at each state's own timestep, as the DDIM paper encodes) or
                      diffusers (as its DDIMInverseScheduler: ε at the timestep each step moves to)
${DDIM_HELP(50)}
${COMMON_HELP}
Decode with the same --steps and --skip to get the images back.
${RUN_FORMS}`,
  decode: `usage: ${PROGRAM} decode --latent latent.safetensors [--steps S] [--out decoded.png] [options]

Decodes latents (key 'xT', f32 [N,C,H,W], as encode writes them) with deterministic DDIM into a
PNG grid of all of them.
  --latent FILE       the latents
  --out FILE          the PNG grid (default: decoded.png)
  --clip              clip each x0 prediction to [-1, 1] (default: as the scheduler config says)
  --steps S           DDIM steps (default: the steps the latents were encoded with, as encode
                      notes in the file; else 50)
  --skip SPACING      timestep spacing (default: as encoded; else uniform)
${SCALE_HELP}
${COMMON_HELP}
${RUN_FORMS}`,
  interpolate: `usage: ${PROGRAM} interpolate --seed-a A --seed-b B [--frames F] [--steps S] [--out interpolation.png] [options]

Interpolates spherically between the starting latents of two seeds and decodes every frame
with deterministic DDIM into one row of images.
  --seed-a A          seed of the first image (integer from 0 to 2^53-1)
  --seed-b B          seed of the last image
  --frames F          images along the path, both ends included, at least 2 (default: 8)
  --out FILE          the PNG strip (default: interpolation.png)
${DDIM_HELP(50)}
${SCALE_HELP}
${COMMON_HELP}
${RUN_FORMS}`,
  eps: `usage: ${PROGRAM} eps --in inputs.safetensors [--out eps.safetensors] [options]

Runs the UNet once per image: its prediction of the noise eps(x, t) (of x0 or v, for models
whose scheduler config says so).
  --in FILE           safetensors with 'x' f32 [N,C,H,W] (model space) and 't' i32 [N] (timesteps);
                      for a class-conditional model also 'class_labels' i32 [N]
  --out FILE          safetensors with 'eps' f32 [N,C,H,W] (default: eps.safetensors)
${COMMON_HELP}
${RUN_FORMS}`,
  convert: `usage: ${PROGRAM} convert SRC --out DIR [--config config.yml] [--no-ema]

Makes a diffusers model folder (config.json, diffusion_pytorch_model.safetensors,
scheduler_config.json) that every command, the library and the web page load. PyTorch files are
read without running them: only tensors and plain containers, any other Python global refused.
  SRC                 a checkpoint of the DDIM paper's code (ermongroup/ddim): a training ckpt.pth
                      ([model, optimizer, epoch, step, ema]) or a bare state dict (model.ckpt, e.g.
                      the downloaded CIFAR-10 model), torch's zip or legacy format, with --config;
                      or a diffusers model folder holding diffusion_pytorch_model.bin
  --config FILE       that code's config.yml (model.ch, ch_mult, attn_resolutions, diffusion.beta_schedule, ...)
  --no-ema            take a training checkpoint's raw weights (default: its EMA weights, as that code samples)
  --out DIR           the model folder to make: new, or an empty folder; written whole or not at all
  -h, --help          this help
Then: ${PROGRAM} --model DIR (its scheduler: that code's betas, no clipping). See docs/checkpoints.md.
${RUN_FORMS}`,
};

/** The first line of a command's usage, printed after a usage mistake. */
export function usageLine(command: CommandName): string {
  return `${USAGE[command].split('\n')[0]}  (--help for more)`;
}

// ---------------------------------------------------------------------------------------------
// Parsed arguments

/** Which WebGPU implementation, and how the UNet is stored on the GPU. */
export interface DeviceArgs {
  backend: Backend;
  precision: Precision;
  /** --gpu-memory in bytes: the budget the engine's buffers must fit (src/gpu/memory_budget.ts). */
  gpuMemory?: number;
  /** --verbose: the adapter and its driver's notes on stderr (adapterReport in src/cli/gpu.ts). */
  verbose?: boolean;
}

export interface CommonArgs extends DeviceArgs {
  /** undefined: the bundled default model. */
  model?: string;
  /** Images per forward, as given; undefined: min(images, 16). */
  batch?: number;
}

export interface DdimArgs {
  /** As given; undefined: 50 (decode: what the latents' file says it was encoded with). */
  steps?: number;
  /** As given; undefined: the config's timestep_spacing, else uniform (decode: as the latents' file says). */
  spacing?: TimestepSpacing;
  /** --class: one label for all images, or one per image. */
  classLabels?: number[];
}

/** --shard K/N: blocks K, K + N, ... of FID_BLOCK images. */
export interface Shard {
  index: number;
  count: number;
}

export interface SampleArgs extends CommonArgs, DdimArgs {
  command: 'sample';
  /** As given; undefined: 16, or the number of latents in --xT. */
  n?: number;
  eta: number;
  sigmaHat?: boolean;
  /** undefined: as the scheduler config says. */
  clip?: boolean;
  seed: number;
  /** FID mode: numbered PNGs in this folder, resumable. */
  outDir?: string;
  shard?: Shard;
  saveLatents?: boolean;
  out: string;
  outTensor?: string;
  xT?: string;
  noise?: string;
  scale?: number;
  /** --profile: print a per-kind profile of the UNet's nodes. */
  profile?: boolean;
  /** --trace: write the profile as a Chrome trace (implies profiling). */
  trace?: string;
  /** Latent models: the image size in pixels (default: the UNet's sample_size times the autoencoder's downscale factor). */
  height?: number;
  width?: number;
  /** Text-to-image models: the prompts (one for all, or one per image), negative prompts, guidance. */
  prompt: string[];
  negativePrompt: string[];
  guidance?: number;
  clipSkip?: number;
  initImage?: string;
  strength?: number;
}

export interface EncodePromptArgs extends DeviceArgs {
  command: 'encode-prompt';
  model?: string;
  prompt: string[];
  clipSkip: number;
  out: string;
}

export interface EncodeArgs extends CommonArgs, DdimArgs {
  command: 'encode';
  images: string[];
  out: string;
  inversion: InversionMode;
}

export interface DecodeArgs extends CommonArgs, DdimArgs {
  command: 'decode';
  latent: string;
  clip?: boolean;
  out: string;
  scale?: number;
}

export interface InterpolateArgs extends CommonArgs, DdimArgs {
  command: 'interpolate';
  seedA: number;
  seedB: number;
  frames: number;
  out: string;
  scale?: number;
}

/** eps reads the class labels from --in ('class_labels'). */
export interface EpsArgs extends CommonArgs {
  command: 'eps';
  input: string;
  out: string;
}

export interface ConvertArgs {
  command: 'convert';
  source: string;
  /** The paper code's config.yml; needed for a checkpoint file. */
  config?: string;
  /** false with --no-ema. */
  ema: boolean;
  out: string;
}

/** vae-encode and vae-decode: a latent model's autoencoder alone. */
export interface VaeArgs {
  command: 'vae-encode' | 'vae-decode';
  model?: string;
  batch?: number;
  backend: Backend;
  precision: Precision;
  gpuMemory?: number;
  verbose?: boolean;
  input: string;
  out: string;
  png?: string;
  noQuantize: boolean;
}

export type CommandArgs = SampleArgs | EncodeArgs | DecodeArgs | InterpolateArgs | EpsArgs | ConvertArgs | VaeArgs | EncodePromptArgs;

export type ParsedCommandLine = CommandArgs | { command: CommandName; help: true };

// ---------------------------------------------------------------------------------------------
// Parsing

type OptionTable = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

const COMMON_OPTIONS: OptionTable = {
  model: { type: 'string' },
  batch: { type: 'string' },
  backend: { type: 'string' },
  precision: { type: 'string' },
  'gpu-memory': { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};
const DDIM_OPTIONS: OptionTable = { steps: { type: 'string' }, skip: { type: 'string' }, class: { type: 'string' } };

const OPTIONS: Record<CommandName, OptionTable> = {
  sample: {
    ...COMMON_OPTIONS,
    ...DDIM_OPTIONS,
    n: { type: 'string' },
    eta: { type: 'string' },
    'sigma-hat': { type: 'boolean' },
    clip: { type: 'boolean' },
    'out-dir': { type: 'string' },
    shard: { type: 'string' },
    'save-latents': { type: 'boolean' },
    seed: { type: 'string' },
    out: { type: 'string' },
    'out-tensor': { type: 'string' },
    xT: { type: 'string' },
    noise: { type: 'string' },
    scale: { type: 'string' },
    profile: { type: 'boolean' },
    trace: { type: 'string' },
    height: { type: 'string' },
    width: { type: 'string' },
    prompt: { type: 'string', multiple: true },
    'negative-prompt': { type: 'string', multiple: true },
    guidance: { type: 'string' },
    'clip-skip': { type: 'string' },
    'init-image': { type: 'string' },
    strength: { type: 'string' },
  },
  encode: {
    ...COMMON_OPTIONS,
    ...DDIM_OPTIONS,
    image: { type: 'string', multiple: true },
    out: { type: 'string' },
    inversion: { type: 'string' },
  },
  decode: {
    ...COMMON_OPTIONS,
    ...DDIM_OPTIONS,
    latent: { type: 'string' },
    clip: { type: 'boolean' },
    out: { type: 'string' },
    scale: { type: 'string' },
  },
  interpolate: {
    ...COMMON_OPTIONS,
    ...DDIM_OPTIONS,
    'seed-a': { type: 'string' },
    'seed-b': { type: 'string' },
    frames: { type: 'string' },
    out: { type: 'string' },
    scale: { type: 'string' },
  },
  eps: { ...COMMON_OPTIONS, in: { type: 'string' }, out: { type: 'string' } },
  convert: { config: { type: 'string' }, 'no-ema': { type: 'boolean' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  'encode-prompt': {
    ...COMMON_OPTIONS,
    prompt: { type: 'string', multiple: true },
    'clip-skip': { type: 'string' },
    out: { type: 'string' },
  },
  'vae-encode': {
    model: { type: 'string' },
    batch: { type: 'string' },
    backend: { type: 'string' },
    precision: { type: 'string' },
    'gpu-memory': { type: 'string' },
    verbose: { type: 'boolean' },
    in: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  'vae-decode': {
    model: { type: 'string' },
    batch: { type: 'string' },
    backend: { type: 'string' },
    precision: { type: 'string' },
    'gpu-memory': { type: 'string' },
    verbose: { type: 'boolean' },
    in: { type: 'string' },
    out: { type: 'string' },
    png: { type: 'string' },
    'no-quantize': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
};

/** Commands that take positional arguments (convert's SRC). */
const POSITIONALS: Partial<Record<CommandName, number>> = { convert: 1 };

function vaeArgs(v: Values, command: 'vae-encode' | 'vae-decode'): VaeArgs {
  const input = v.path('in');
  if (input === undefined) {
    throw new CliError(
      command === 'vae-encode'
        ? "vae-encode needs --in FILE (a PNG, or safetensors with 'image')"
        : "vae-decode needs --in FILE (safetensors with 'z')",
      usageLine(command),
    );
  }
  return {
    command,
    model: v.path('model'),
    batch: v.positiveInt('batch'),
    backend: v.choice('backend', BACKENDS) ?? 'auto',
    precision: v.choice('precision', PRECISIONS) ?? 'f32',
    gpuMemory: v.byteSize('gpu-memory'),
    verbose: !!v.flag('verbose'),
    input,
    out: v.path('out') ?? (command === 'vae-encode' ? 'latents.safetensors' : 'image.safetensors'),
    png: command === 'vae-decode' ? v.pngPath('png') : undefined,
    noQuantize: !!v.flag('no-quantize'),
  };
}

/**
 * Splits off the subcommand (the first word, when it is one; else `sample`) and parses its
 * flags. Throws CliError for every mistake, with the command's usage line as the hint.
 */
export function parseCommandLine(argv: string[]): ParsedCommandLine {
  let command: CommandName = 'sample';
  let rest = argv;
  if (argv.length > 0 && !argv[0].startsWith('-')) {
    if (!(COMMANDS as readonly string[]).includes(argv[0])) {
      throw new CliError(`unknown command '${argv[0]}': use one of ${COMMANDS.join(', ')}`, unknownCommandHint(argv[0]));
    }
    command = argv[0] as CommandName;
    rest = argv.slice(1);
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: rest, options: OPTIONS[command], strict: true, allowPositionals: command in POSITIONALS });
    values = parsed.values as typeof values;
    positionals = parsed.positionals;
  } catch (error) {
    throw new CliError(describeParseError(error, command), usageLine(command));
  }
  if (values.help) return { command, help: true };
  if (command === 'convert') return convertArgs(new Values(values, command), positionals);
  if (command === 'vae-encode' || command === 'vae-decode') return vaeArgs(new Values(values, command), command);
  if (command === 'encode-prompt') {
    const v = new Values(values, command);
    const prompt = v.texts('prompt');
    if (prompt.length === 0) throw new CliError('encode-prompt needs at least one --prompt', usageLine(command));
    return {
      command,
      model: v.path('model'),
      backend: v.choice('backend', BACKENDS) ?? 'auto',
      precision: v.choice('precision', PRECISIONS) ?? 'f32',
      gpuMemory: v.byteSize('gpu-memory'),
      verbose: !!v.flag('verbose'),
      prompt,
      clipSkip: v.count('clip-skip') ?? 0,
      out: v.path('out') ?? 'prompt.safetensors',
    };
  }
  const v = new Values(values, command);
  const common: CommonArgs = {
    model: v.path('model'),
    backend: v.choice('backend', BACKENDS) ?? 'auto',
    precision: v.choice('precision', PRECISIONS) ?? 'f32',
    gpuMemory: v.byteSize('gpu-memory'),
    verbose: !!v.flag('verbose'),
    batch: v.positiveInt('batch'),
  };
  const ddim = (): DdimArgs => ({ steps: v.positiveInt('steps'), spacing: v.choice('skip', SPACINGS), classLabels: v.classLabels() });
  switch (command) {
    case 'sample': {
      const args: SampleArgs = {
        command,
        ...common,
        ...ddim(),
        n: v.positiveInt('n'),
        eta: v.eta(),
        sigmaHat: v.flag('sigma-hat'),
        clip: v.flag('clip'),
        seed: v.seed('seed') ?? 0,
        out: v.pngPath('out') ?? 'samples.png',
        outTensor: v.path('out-tensor'),
        xT: v.path('xT'),
        noise: v.path('noise'),
        scale: v.scale(),
        profile: v.flag('profile'),
        trace: v.path('trace'),
        outDir: v.path('out-dir'),
        shard: v.shard(),
        saveLatents: v.flag('save-latents'),
        height: v.positiveInt('height'),
        width: v.positiveInt('width'),
        prompt: v.texts('prompt'),
        negativePrompt: v.texts('negative-prompt'),
        guidance: v.number('guidance'),
        clipSkip: v.count('clip-skip'),
        initImage: v.path('init-image'),
        strength: v.number('strength'),
      };
      if (args.prompt.length === 0) {
        for (const flag of ['negative-prompt', 'guidance', 'clip-skip', 'init-image', 'strength']) {
          if (values[flag] !== undefined) throw new CliError(`--${flag} is for text-to-image: give --prompt too`, usageLine(command));
        }
      }
      if (args.strength !== undefined && !(args.strength > 0 && args.strength <= 1)) {
        throw new CliError(`--strength must be in (0, 1], got ${args.strength}`);
      }
      if (args.strength !== undefined && args.initImage === undefined) {
        throw new CliError('--strength needs --init-image', usageLine(command));
      }
      if (args.sigmaHat && values.eta !== undefined) {
        throw new CliError('--sigma-hat is its own sampler: give it without --eta', usageLine(command));
      }
      if (args.outDir === undefined) {
        for (const flag of ['shard', 'save-latents']) {
          if (values[flag] !== undefined) throw new CliError(`--${flag} needs --out-dir DIR (FID mode)`, usageLine(command));
        }
      } else {
        // FID mode makes its images from the seed, one PNG each; the grid's flags do not apply.
        for (const flag of ['out', 'out-tensor', 'xT', 'noise', 'scale', 'profile', 'trace']) {
          if (values[flag] !== undefined) throw new CliError(`--${flag} does not go with --out-dir`, usageLine(command));
        }
      }
      return args;
    }
    case 'encode': {
      const images = v.paths('image');
      if (images.length === 0) throw new CliError('encode needs at least one --image', usageLine(command));
      return {
        command,
        ...common,
        ...ddim(),
        images,
        out: v.path('out') ?? 'latent.safetensors',
        inversion: v.choice('inversion', INVERSION_MODES) ?? 'paper',
      };
    }
    case 'decode': {
      const latent = v.path('latent');
      if (latent === undefined) throw new CliError('decode needs --latent FILE (latents as encode writes them)', usageLine(command));
      return { command, ...common, ...ddim(), latent, clip: v.flag('clip'), out: v.pngPath('out') ?? 'decoded.png', scale: v.scale() };
    }
    case 'interpolate': {
      const seedA = v.seed('seed-a');
      const seedB = v.seed('seed-b');
      if (seedA === undefined || seedB === undefined) {
        throw new CliError('interpolate needs both --seed-a and --seed-b', usageLine(command));
      }
      const frames = v.positiveInt('frames') ?? 8;
      if (frames < 2) throw new CliError(`--frames must be at least 2 (both ends are included), got ${frames}`);
      return { command, ...common, ...ddim(), seedA, seedB, frames, out: v.pngPath('out') ?? 'interpolation.png', scale: v.scale() };
    }
    case 'eps': {
      const input = v.path('in');
      if (input === undefined) throw new CliError("eps needs --in FILE (safetensors with 'x' and 't')", usageLine(command));
      return { command, ...common, input, out: v.path('out') ?? 'eps.safetensors' };
    }
  }
}

function convertArgs(v: Values, positionals: string[]): ConvertArgs {
  if (positionals.length !== 1) {
    throw new CliError(
      positionals.length === 0
        ? 'convert needs SRC: a checkpoint file or a model folder'
        : `convert takes one SRC, got ${positionals.length}`,
      usageLine('convert'),
    );
  }
  const out = v.path('out');
  if (out === undefined) throw new CliError('convert needs --out DIR (the model folder to make)', usageLine('convert'));
  const source = positionals[0].trim();
  if (source === '') throw new CliError('convert needs SRC, got an empty name', usageLine('convert'));
  return { command: 'convert', source, config: v.path('config'), ema: !v.flag('no-ema'), out };
}

/**
 * A word that is no command but looks like a flag's value (a number, a file name) most often
 * lost its flag on the way: `npm run sample --n 1` hands `--n` to npm and only `1` to the CLI.
 */
function unknownCommandHint(word: string): string {
  if (!/^[\d.+-]|[./\\]/.test(word)) return usageLine('sample');
  return `'${word}' looks like a flag's value without its flag: with npm run, put the flags after -- ` +
    '(npm run sample -- --n 4), or npm takes them for itself';
}

/** parseArgs' messages are long and Node-worded; these name the flag and the problem. */
function describeParseError(error: unknown, command: CommandName): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  const quotedName = /'(-[^' ]*)/.exec(message)?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option '${quotedName ?? message}' for ${command}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(message)) return `${quotedName ?? 'an option'} needs a value`;
      if (/does not take an argument/.test(message)) return `${quotedName ?? 'a flag'} takes no value`;
      if (/ambiguous/.test(message)) {
        return `${quotedName ?? 'an option'} needs a value (to give one that starts with '-', write ${quotedName ?? '--option'}=VALUE)`;
      }
      return message;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /'([^']*)'/.exec(message)?.[1];
      return `unexpected argument '${arg ?? message}' (every value follows its --flag)`;
    }
    default:
      if (error instanceof TypeError) return message;
      throw error;
  }
}

const INTEGER = /^\+?\d+$/;

/** Typed, range-checked access to parseArgs' values; every failure names the flag. */
class Values {
  constructor(private readonly values: Record<string, string | boolean | string[] | undefined>, private readonly command: CommandName) {}

  private string(name: string): string | undefined {
    const value = this.values[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new Error(`--${name} is not a string option`);
    return value.trim();
  }

  flag(name: string): boolean | undefined {
    return this.values[name] === true ? true : undefined;
  }

  path(name: string): string | undefined {
    const value = this.string(name);
    if (value === '') throw new CliError(`--${name} needs a file name, got an empty one`, usageLine(this.command));
    return value;
  }

  /** A PNG output: a name ending in another format's extension (x.jpg) would get PNG bytes. */
  pngPath(name: string): string | undefined {
    const value = this.path(name);
    const extension = /\.([^./\\]+)$/.exec(value ?? '')?.[1];
    if (value !== undefined && extension !== undefined && extension.toLowerCase() !== 'png') {
      throw new CliError(
        `--${name} '${value}': the images are written as PNG, not .${extension}`,
        `name it ${value.slice(0, -extension.length)}png (convert it afterwards for another format)`,
      );
    }
    return value;
  }

  paths(name: string): string[] {
    const list = (this.values[name] as string[] | undefined) ?? [];
    for (const p of list) if (p.trim() === '') throw new CliError(`--${name} needs a file name, got an empty one`, usageLine(this.command));
    return list;
  }

  positiveInt(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!INTEGER.test(raw) || !Number.isSafeInteger(value) || value < 1) {
      throw new CliError(`--${name} must be a positive integer, got '${raw}'`);
    }
    return value;
  }

  /** A size in bytes: 6G, 512MiB, 1.5GB (powers of 1024), or a plain byte count. */
  byteSize(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = parseByteSize(raw);
    if (value === undefined) throw new CliError(`--${name} must be a size such as 6G, 512M or 1.5GiB, got '${raw}'`);
    return value;
  }

  seed(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!INTEGER.test(raw) || !Number.isSafeInteger(value)) {
      throw new CliError(`--${name} must be an integer from 0 to 2^53-1 (${Number.MAX_SAFE_INTEGER}), got '${raw}'`);
    }
    return value;
  }

  /** --class: one label, or a comma list of them. */
  classLabels(): number[] | undefined {
    const raw = this.string('class');
    if (raw === undefined) return undefined;
    const parts = raw.split(',').map((p) => p.trim());
    for (const part of parts) {
      if (!INTEGER.test(part) || !Number.isSafeInteger(Number(part))) {
        throw new CliError(`--class must be a class label (an integer ≥ 0) or a comma list of them, got '${raw}'`);
      }
    }
    return parts.map(Number);
  }

  /** --shard K/N with 0 ≤ K < N. */
  shard(): Shard | undefined {
    const raw = this.string('shard');
    if (raw === undefined) return undefined;
    const match = /^(\d+)\/(\d+)$/.exec(raw);
    const index = Number(match?.[1]);
    const count = Number(match?.[2]);
    if (!match || !Number.isSafeInteger(count) || count < 1 || !(index < count)) {
      throw new CliError(`--shard must be K/N with N ≥ 1 and K from 0 to N-1, got '${raw}'`, 'e.g. --shard $SLURM_ARRAY_TASK_ID/8');
    }
    return { index, count };
  }

  eta(): number {
    const raw = this.string('eta');
    if (raw === undefined) return 0;
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new CliError(`--eta must be a number from 0 to 1, got '${raw}'`, '0 is deterministic DDIM, 1 is DDPM-like sampling');
    }
    return value;
  }

  /** Texts given with a repeatable flag (prompts may be empty strings). */
  texts(name: string): string[] {
    return [...((this.values[name] as string[] | undefined) ?? [])];
  }

  /** A finite number. */
  number(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value)) throw new CliError(`--${name} must be a number, got '${raw}'`);
    return value;
  }

  /** An integer ≥ 0. */
  count(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!INTEGER.test(raw) || !Number.isSafeInteger(value)) throw new CliError(`--${name} must be an integer of 0 or more, got '${raw}'`);
    return value;
  }

  scale(): number | undefined {
    const value = this.positiveInt('scale');
    if (value !== undefined && value > 32) throw new CliError(`--scale must be from 1 to 32, got ${value}`);
    return value;
  }

  choice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new CliError(`--${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
    }
    return raw as T;
  }
}
