/**
 * The command line on text-to-image models (Stable Diffusion pipeline folders): `sample --prompt`
 * (text-to-image, or img2img with --init-image), `encode-prompt`, and `eps` on the conditional
 * UNet. As everywhere, every input is read and checked before the GPU opens, and outputs are
 * written at the end, atomically.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gridRgba, rgbaToTensor } from '../io/image.ts';
import { decodePng, encodePng, PngError } from '../io/png.ts';
import { type SafetensorsFile, serializeSafetensors, toInt32 } from '../io/safetensors.ts';
import { ConditionalUNet } from '../models/unet_2d_condition_model.ts';
import { ddimTimesteps, ScheduleError, type TimestepSpacing } from '../sampler/schedule.ts';
import { readTextToImageModel, StableDiffusionPipeline, type TextToImageModel } from '../text_to_image_pipeline.ts';
import { type Truncation, truncationMessage } from '../text/clip_tokenizer.ts';
import { downscaleFactor } from '../models/autoencoder_config.ts';
import { CliError, type EncodePromptArgs, type EpsArgs, type SampleArgs } from './args.ts';
import { readFileBytes, writeFileAtomic } from './files.ts';
import { fastestGpu } from './gpu.ts';
import { defaultModelDir, readModelDir } from './model_dir.ts';
import { type CliIo, CompileProgressLine, plural, ProgressBar, rate } from './progress.ts';
import { checkOutput, f32Tensor, floatTensor, INT_TYPES, precisionNote, readSafetensorsFile } from './run.ts';

const DEFAULT_STEPS = 50;
/** The largest PNG written (decodePng's default limit). */
const MAX_PIXELS = 2 ** 26;

/** Whether a model folder is a text-to-image pipeline: its model_index.json lists a text encoder. */
export function isTextToImageDir(dir: string | undefined): boolean {
  try {
    const index = JSON.parse(readFileSync(join(dir ?? defaultModelDir(), 'model_index.json'), 'utf8'));
    return Array.isArray(index?.text_encoder) && index.text_encoder[1] !== null;
  } catch {
    return false;
  }
}

interface LoadedModel {
  dir: string;
  model: TextToImageModel;
}

async function loadTextToImage(dirArg: string | undefined): Promise<LoadedModel> {
  const dir = dirArg ?? defaultModelDir();
  const { files } = await readModelDir(dir);
  try {
    return { dir, model: readTextToImageModel(files) };
  } catch (error) {
    throw new CliError(`model '${dir}': ${(error as Error).message}`);
  }
}

function timesteps(model: TextToImageModel, steps: number, spacing: TimestepSpacing): number[] {
  const T = model.schedule.numTrainTimesteps;
  if (steps > T) throw new CliError(`--steps must be from 1 to ${T} (the model's training timesteps), got ${steps}`);
  try {
    return ddimTimesteps(steps, spacing, T, model.schedule.stepsOffset);
  } catch (error) {
    if (error instanceof ScheduleError) throw new CliError(`--steps ${steps} with --skip ${spacing}: ${error.message}`);
    throw error;
  }
}

function noteTruncations(io: CliIo, truncations: Truncation[], maxLength: number, what = 'prompt'): void {
  for (const t of truncations) io.stderr(`note: ${what} ${t.index + 1}: ${truncationMessage(t, maxLength)}\n`);
}

/** --init-image: a PNG (one image, to [-1, 1]) or safetensors with 'image' [N, 3, H, W] of the image size. */
async function readInitImages(path: string, imageShape: [number, number, number]): Promise<Float32Array> {
  const [c, h, w] = imageShape;
  const bytes = await readFileBytes(path, '--init-image file');
  if (bytes.length >= 4 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    let png;
    try {
      png = await decodePng(bytes);
    } catch (error) {
      if (error instanceof PngError) throw new CliError(`--init-image '${path}': ${error.message}`);
      throw error;
    }
    if (png.width !== w || png.height !== h) {
      throw new CliError(
        `--init-image '${path}' is ${png.width}x${png.height}; this run makes ${w}x${h} images`,
        'give --width and --height to match it',
      );
    }
    return rgbaToTensor(png.rgba, w, h);
  }
  const file = await readSafetensorsFile(path, '--init-image');
  return floatTensor(file, 'image', path, '--init-image', [null, c, h, w], `a PNG, or 'image' f32 [N, ${c}, ${h}, ${w}] in [-1, 1]`).data;
}

/** sample --prompt: text-to-image with DDIM under guidance (img2img with --init-image), a PNG grid and optionally the tensors. */
export async function sampleText(args: SampleArgs, io: CliIo): Promise<void> {
  if (!isTextToImageDir(args.model)) {
    throw new CliError(
      `--prompt is for text-to-image models (Stable Diffusion folders); model '${args.model ?? defaultModelDir()}' has no text encoder`,
    );
  }
  const { dir, model } = await loadTextToImage(args.model);
  if (args.prompt.length === 0) {
    throw new CliError(
      `model '${dir}' is a text-to-image model: give --prompt "..."`,
      'e.g. --prompt "a photograph of an astronaut riding a horse"',
    );
  }
  if (args.outDir !== undefined) throw new CliError('--out-dir is for pixel models; a text-to-image run writes --out and --out-tensor');
  if (args.classLabels) throw new CliError('--class is for class-conditional models; this one is conditioned on --prompt');
  if (args.sigmaHat) throw new CliError('--sigma-hat is for pixel models here; a text-to-image run uses DDIM with --eta');
  const factor = downscaleFactor(model.autoencoder.config);
  const sampleSize = model.unet.config.sampleSize ?? 64;
  const height = args.height ?? sampleSize * factor;
  const width = args.width ?? sampleSize * factor;
  for (const [flag, value] of [['--height', height], ['--width', width]] as const) {
    if (value % factor !== 0) {
      throw new CliError(`${flag} ${value} is not a multiple of ${factor}, the downscale factor of model '${dir}'s VAE`);
    }
  }
  const latentShape = [model.unet.config.inChannels, height / factor, width / factor];
  const imageShape: [number, number, number] = [model.autoencoder.config.outChannels, height, width];
  checkOutput(args.out, '--out');
  if (args.outTensor) checkOutput(args.outTensor, '--out-tensor');
  const steps = args.steps ?? DEFAULT_STEPS;
  const spacing = args.spacing ?? model.schedule.timestepSpacing ?? 'uniform';
  const ts = timesteps(model, steps, spacing);
  let initImage: Float32Array | undefined;
  let count: number | undefined;
  if (args.initImage) {
    initImage = await readInitImages(args.initImage, imageShape);
    count = initImage.length / (imageShape[0] * height * width);
  }
  let xT: Float32Array | undefined;
  if (args.xT) {
    const file = await readSafetensorsFile(args.xT, '--xT');
    const latents = floatTensor(
      file,
      'xT',
      args.xT,
      '--xT',
      [count ?? null, ...latentShape],
      `latents: key 'xT', f32 [N, ${latentShape.join(', ')}]`,
    );
    xT = latents.data;
    count = latents.shape[0];
  }
  count ??= args.n ?? (args.prompt.length > 1 ? args.prompt.length : 1);
  if (args.n !== undefined && args.n !== count) {
    throw new CliError(`--n ${args.n} disagrees with the ${plural(count, 'image')} that --xT or --init-image give`);
  }
  for (const [flag, list] of [['--prompt', args.prompt], ['--negative-prompt', args.negativePrompt]] as const) {
    if (list.length > 1 && list.length !== count) {
      throw new CliError(`${list.length} ${flag}s for ${plural(count, 'image')}: give one for all or one per image`);
    }
  }
  const grid = Math.ceil(Math.sqrt(count));
  const scale = args.scale ?? (width <= 64 ? 2 : 1);
  const pixels = (grid * (width + 2) + 2) * scale * (Math.ceil(count / grid) * (height + 2) + 2) * scale;
  if (pixels > MAX_PIXELS) {
    throw new CliError(`the PNG would have ${pixels} pixels, more than ${MAX_PIXELS}: lower --scale or the number of images`);
  }

  const gpu = await fastestGpu(args.backend, args.precision, args.gpuMemory, args.verbose ? io.stderr : undefined);
  let pipeline: StableDiffusionPipeline | undefined;
  try {
    const batch = Math.min(args.batch ?? 1, count);
    const compiling = new CompileProgressLine(io);
    try {
      pipeline = await StableDiffusionPipeline.load(gpu, model, {
        batch,
        height,
        width,
        precision: args.precision,
        onCompileProgress: compiling.onProgress,
      });
    } finally {
      await compiling.stop();
    }
    const fallback = precisionNote(args.precision, pipeline.precision, gpu.adapterName);
    if (fallback) io.stderr(fallback);
    const bar = new ProgressBar(io, args.initImage ? 'img2img' : 'sample', count, batch, ts.length);
    const start = performance.now();
    let result;
    try {
      result = await pipeline.sample({
        prompt: args.prompt.length === 1 ? args.prompt[0] : args.prompt,
        negativePrompt: args.negativePrompt.length === 0
          ? undefined
          : args.negativePrompt.length === 1
          ? args.negativePrompt[0]
          : args.negativePrompt,
        guidance: args.guidance,
        clipSkip: args.clipSkip,
        steps,
        spacing,
        eta: args.eta,
        seed: args.seed,
        count,
        xT,
        initImage,
        strength: args.strength,
        onStep: bar.onStep,
        // Deno's wgpu reports a step only when something waits on the device (see commands.ts).
        previewX0: gpu.implementation === 'deno-wgpu',
      });
    } finally {
      await bar.stop();
    }
    const seconds = (performance.now() - start) / 1000;
    noteTruncations(io, result.truncations, model.tokenizer.maxLength);
    noteTruncations(io, result.negativeTruncations, model.tokenizer.maxLength, 'negative prompt');
    const png = gridRgba(result.images, count, imageShape[0], height, width, { scale });
    const outputs: [string, Uint8Array][] = [[args.out, await encodePng(png.rgba, png.width, png.height)]];
    if (args.outTensor) {
      outputs.push([
        args.outTensor,
        serializeSafetensors({
          x0: f32Tensor(result.x0, [count, ...latentShape]),
          image: f32Tensor(result.images, [count, ...imageShape]),
        }),
      ]);
    }
    const errors = gpu.uncapturedErrors;
    if (errors.length) throw new Error(`the GPU reported ${plural(errors.length, 'error')}; nothing was written:\n${errors.join('\n')}`);
    for (const [path, bytes] of outputs) await writeFileAtomic(path, bytes);
    io.stdout(
      `${plural(result.timesteps.length, 'step')} x ${plural(count, 'image')} in ${rate(count, seconds)} on ${gpu.adapterName}${
        pipeline.precision === 'f32' ? '' : `, ${pipeline.precision}`
      } -> ${outputs.map(([p]) => p).join(', ')}\n`,
    );
  } finally {
    pipeline?.destroy();
    gpu.device.destroy();
  }
}

/** encode-prompt: the tokenizer's ids and the text encoder's embeddings of the prompts. */
export async function encodePromptCommand(args: EncodePromptArgs, io: CliIo): Promise<void> {
  const { dir, model } = await loadTextToImage(args.model);
  checkOutput(args.out, '--out');
  if (args.clipSkip >= model.textEncoder.config.numHiddenLayers) {
    throw new CliError(`--clip-skip ${args.clipSkip}: model '${dir}'s text encoder has ${model.textEncoder.config.numHiddenLayers} layers`);
  }
  const gpu = await fastestGpu(args.backend, args.precision, args.gpuMemory, args.verbose ? io.stderr : undefined);
  let pipeline: StableDiffusionPipeline | undefined;
  try {
    pipeline = await StableDiffusionPipeline.load(gpu, model, { precision: args.precision });
    const start = performance.now();
    const encoded = await pipeline.encodePrompt(args.prompt, args.clipSkip);
    const seconds = (performance.now() - start) / 1000;
    noteTruncations(io, encoded.truncations, model.tokenizer.maxLength);
    const length = model.tokenizer.maxLength;
    const hidden = model.textEncoder.config.hiddenSize;
    const b = args.prompt.length;
    await writeFileAtomic(
      args.out,
      serializeSafetensors({
        input_ids: { dtype: 'I32', shape: [b, length], data: encoded.inputIds },
        prompt_embeds: f32Tensor(encoded.embeds, [b, length, hidden]),
      }),
    );
    io.stdout(`encode-prompt: ${plural(b, 'prompt')} in ${seconds.toFixed(2)} s on ${gpu.adapterName} -> ${args.out}\n`);
  } finally {
    pipeline?.destroy();
    gpu.device.destroy();
  }
}

function intTensor(file: SafetensorsFile, key: string, path: string, count: number): Int32Array {
  const entry = file.tensors.get(key);
  if (!entry) throw new CliError(`--in '${path}' has no tensor '${key}' (the timestep of each image)`);
  if (!INT_TYPES.has(entry.dtype) || entry.shape.length !== 1 || entry.shape[0] !== count) {
    throw new CliError(
      `--in '${path}': tensor '${key}' must be an integer tensor of shape [${count}], got ${entry.dtype} [${entry.shape.join(', ')}]`,
    );
  }
  return toInt32(entry);
}

/** eps on a text-conditioned UNet: 'x' [N, C, h, w], 't' [N], 'encoder_hidden_states' [N, 77, hidden]. */
export async function epsText(args: EpsArgs, io: CliIo): Promise<void> {
  const { model } = await loadTextToImage(args.model);
  const file = await readSafetensorsFile(args.input, '--in');
  const c = model.unet.config.inChannels;
  const meaning = `'x' f32 [N, ${c}, h, w], 't' i32 [N] and 'encoder_hidden_states' f32 [N, 77, hidden]`;
  const x = floatTensor(file, 'x', args.input, '--in', [null, c, null, null], meaning);
  const [n, , h, w] = x.shape;
  const t = intTensor(file, 't', args.input, n);
  const T = model.schedule.numTrainTimesteps;
  const bad = t.findIndex((v) => v < 0 || v >= T);
  if (bad >= 0) throw new CliError(`--in '${args.input}': t[${bad}] = ${t[bad]} is outside the model's timesteps 0..${T - 1}`);
  const hidden = model.unet.config.crossAttentionDim[0];
  const states = floatTensor(file, 'encoder_hidden_states', args.input, '--in', [n, null, hidden], meaning);
  checkOutput(args.out, '--out');
  const gpu = await fastestGpu(args.backend, args.precision, args.gpuMemory, args.verbose ? io.stderr : undefined);
  let unet: ConditionalUNet | undefined;
  try {
    unet = await ConditionalUNet.compile(gpu, model.unet, {
      batch: n,
      height: h,
      width: w,
      contextLength: states.shape[1],
      precision: args.precision,
    });
    if (unet.batch !== n) throw new CliError(`${plural(n, 'image')} do not fit one forward on this adapter; at most ${unet.batch}`);
    const start = performance.now();
    const eps = await unet.forward(x.data, t, states.data);
    const seconds = (performance.now() - start) / 1000;
    await writeFileAtomic(args.out, serializeSafetensors({ eps: f32Tensor(eps, x.shape) }));
    io.stdout(`eps: ${plural(n, 'image')} in ${rate(n, seconds)} on ${gpu.adapterName} -> ${args.out}\n`);
  } finally {
    unet?.destroy();
    gpu.device.destroy();
  }
}
