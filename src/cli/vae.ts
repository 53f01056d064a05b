/**
 * vae-encode and vae-decode: a latent model's autoencoder alone, tensors in and out, as diffusers'
 * `vae.encode(image).latent_dist` / `vqvae.encode(image).latents` and `.decode(z).sample` give them.
 * Like every command, all input is read and checked before the GPU opens, and outputs are written
 * at the end, atomically.
 */
import { requestGpu } from '../gpu/device.ts';
import { gridRgba, rgbaToTensor } from '../io/image.ts';
import { decodePng, encodePng, PngError } from '../io/png.ts';
import { serializeSafetensors } from '../io/safetensors.ts';
import { Autoencoder, type AutoencoderWeights } from '../models/autoencoder_model.ts';
import { downscaleFactor } from '../models/autoencoder_config.ts';
import { CliError, type VaeArgs } from './args.ts';
import { adapterReport } from './gpu.ts';
import { readFileBytes, writeFileAtomic } from './files.ts';
import { type CliIo, plural } from './progress.ts';
import { checkOutput, f32Tensor, floatTensor, loadModel, readSafetensorsFile } from './run.ts';

async function autoencoderOf(args: VaeArgs, io: CliIo): Promise<{ dir: string; weights: AutoencoderWeights }> {
  const model = await loadModel(args.model, io);
  if (!model.autoencoder) {
    throw new CliError(
      `model '${model.dir}' has no autoencoder`,
      `${args.command} takes a latent model's pipeline folder: model_index.json with a vae/ (AutoencoderKL) or vqvae/ (VQModel)`,
    );
  }
  return { dir: model.dir, weights: model.autoencoder };
}

/** Opens the GPU, runs `work` on the autoencoder, and refuses results made alongside a GPU error. */
async function onGpu<T>(
  args: VaeArgs,
  io: CliIo,
  weights: AutoencoderWeights,
  work: (vae: Autoencoder) => Promise<T>,
): Promise<{ result: T; adapter: string }> {
  const gpu = await requestGpu({ backend: args.backend, maxMemoryBytes: args.gpuMemory });
  if (args.verbose) io.stderr(adapterReport(gpu));
  const vae = Autoencoder.load(gpu, weights, { batch: args.batch, precision: args.precision });
  try {
    const errorsBefore = gpu.uncapturedErrors.length;
    const result = await work(vae);
    const errors = gpu.uncapturedErrors.slice(errorsBefore);
    if (errors.length) throw new Error(`the GPU reported ${plural(errors.length, 'error')}; nothing was written:\n${errors.join('\n')}`);
    return { result, adapter: gpu.adapterName };
  } finally {
    vae.destroy();
    gpu.device.destroy();
  }
}

function checkFinite(values: Float32Array, what: string): void {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${what} holds ${values[bad]} at element ${bad}; nothing was written`);
}

/** --in: a PNG (one image, mapped to [-1, 1]) or safetensors with 'image' [N, C, H, W]. */
async function readImages(path: string, channels: number): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
  const bytes = await readFileBytes(path, '--in file');
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  if (isPng) {
    let png;
    try {
      png = await decodePng(bytes);
    } catch (error) {
      if (error instanceof PngError) throw new CliError(`--in '${path}': ${error.message}`);
      throw error;
    }
    if (channels !== 3) throw new CliError(`--in '${path}' is a PNG, but this autoencoder encodes images of ${channels} channels`);
    return { data: rgbaToTensor(png.rgba, png.width, png.height), shape: [1, 3, png.height, png.width] };
  }
  const file = await readSafetensorsFile(path, '--in');
  const meaning = `images: a PNG, or safetensors with key 'image', f32 [N, ${channels}, H, W] in [-1, 1]`;
  const { data, shape } = floatTensor(file, 'image', path, '--in', [null, channels, null, null], meaning);
  return { data, shape: shape as [number, number, number, number] };
}

export async function vaeEncode(args: VaeArgs, io: CliIo): Promise<void> {
  const { dir, weights } = await autoencoderOf(args, io);
  checkOutput(args.out, '--out');
  const { data, shape } = await readImages(args.input, weights.config.inChannels);
  const f = downscaleFactor(weights.config);
  if (shape[2] % f !== 0 || shape[3] % f !== 0) {
    throw new CliError(
      `--in '${args.input}': images of ${shape[2]}x${
        shape[3]
      } are not a multiple of ${f}, the downscale factor of model '${dir}'s autoencoder`,
    );
  }
  const start = performance.now();
  const { result, adapter } = await onGpu(args, io, weights, (vae) => vae.encode(data, shape));
  checkFinite(result.latents, 'the latents');
  const tensors: Record<string, ReturnType<typeof f32Tensor>> = result.logvar
    ? { mean: f32Tensor(result.latents, result.shape), logvar: f32Tensor(result.logvar, result.shape) }
    : { latents: f32Tensor(result.latents, result.shape) };
  await writeFileAtomic(args.out, serializeSafetensors(tensors));
  const seconds = (performance.now() - start) / 1000;
  io.stdout(
    `encoded ${plural(shape[0], 'image')} of ${shape[2]}x${shape[3]} in ${seconds.toFixed(1)} s on ${adapter} -> ${args.out} (${
      Object.keys(tensors).join(', ')
    } [${result.shape.join(', ')}])\n`,
  );
}

export async function vaeDecode(args: VaeArgs, io: CliIo): Promise<void> {
  const { weights } = await autoencoderOf(args, io);
  checkOutput(args.out, '--out');
  if (args.png) checkOutput(args.png, '--png');
  if (args.noQuantize && weights.config.className !== 'VQModel') {
    throw new CliError('--no-quantize is for VQModel autoencoders; this one is an AutoencoderKL, which has no codebook');
  }
  const channels = weights.config.className === 'VQModel' ? weights.config.vqEmbedDim : weights.config.latentChannels;
  const file = await readSafetensorsFile(args.input, '--in');
  const { data, shape } = floatTensor(
    file,
    'z',
    args.input,
    '--in',
    [null, channels, null, null],
    `latents: key 'z', f32 [N, ${channels}, h, w], exactly what the decoder's post_quant_conv receives (not scaled)`,
  );
  const start = performance.now();
  const { result, adapter } = await onGpu(
    args,
    io,
    weights,
    (vae) => vae.decode(data, shape as [number, number, number, number], { forceNotQuantize: args.noQuantize }),
  );
  checkFinite(result.image, 'the decoded image');
  const [n, c, h, w] = result.shape;
  const outputs: [string, Uint8Array][] = [[args.out, serializeSafetensors({ image: f32Tensor(result.image, result.shape) })]];
  if (args.png) {
    const grid = gridRgba(result.image, n, c, h, w, {});
    outputs.push([args.png, await encodePng(grid.rgba, grid.width, grid.height)]);
  }
  for (const [path, bytes] of outputs) await writeFileAtomic(path, bytes);
  const seconds = (performance.now() - start) / 1000;
  io.stdout(
    `decoded ${plural(n, 'image')} of ${h}x${w} in ${seconds.toFixed(1)} s on ${adapter} -> ${outputs.map(([p]) => p).join(', ')}\n`,
  );
}
