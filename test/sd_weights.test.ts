/**
 * Stable Diffusion weights as repositories ship them: the `fp16` variant files
 * (diffusion_pytorch_model.fp16.safetensors), bf16 tensors, `--precision f16` on adapters with
 * shader-f16 (the VAE f16-packed, f32 activations, as its force_upcast asks), and full-size configs counted
 * without a GPU.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestGpu } from '../src/gpu/device.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { float32ArrayToFloat16 } from '../src/io/half.ts';
import { parseSafetensors, serializeSafetensors, type TensorToWrite, toFloat32 } from '../src/io/safetensors.ts';
import { requiredAutoencoderWeights } from '../src/models/random_weights.ts';
import { StableDiffusionPipeline } from '../src/text_to_image_pipeline.ts';
import { compare, expectClose, goldenF32, readGolden } from './util/compare.ts';

const SD = '../shared/golden/sd/tiny-sd';

/** The file's float tensors rewritten as F16 or BF16 (bf16: the top 16 bits, rounded to nearest even). */
function halved(path: string, dtype: 'F16' | 'BF16'): Uint8Array {
  const file = parseSafetensors(new Uint8Array(readFileSync(path)));
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, entry] of file.tensors) {
    if (entry.dtype !== 'F32') continue; // position_ids (I64) is not the text encoder's: it is ignored
    const values = toFloat32(entry);
    let data: Uint16Array;
    if (dtype === 'F16') data = float32ArrayToFloat16(values);
    else {
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
      data = Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }
    tensors[name] = { dtype, shape: entry.shape, data };
  }
  return serializeSafetensors(tensors);
}

const test = suite('Stable Diffusion weights');

test('an SD folder with fp16-variant UNet and VAE files and a bf16 text encoder samples the t2i reference', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sd-half-'));
  try {
    cpSync(SD, dir, { recursive: true });
    for (const part of ['unet', 'vae']) {
      const plain = join(dir, part, 'diffusion_pytorch_model.safetensors');
      writeFileSync(join(dir, part, 'diffusion_pytorch_model.fp16.safetensors'), halved(plain, 'F16'));
      rmSync(plain);
    }
    const encoder = join(dir, 'text_encoder', 'model.safetensors');
    writeFileSync(encoder, halved(encoder, 'BF16'));
    const golden = readGolden('sd/sd.safetensors');
    const meta = JSON.parse(golden.metadata!.t2i);
    const gpu = await requestGpu();
    const pipeline = await StableDiffusionPipeline.load(gpu, await loadModelDir(dir));
    try {
      const options = {
        prompt: meta.prompt,
        negativePrompt: meta.negative,
        guidance: meta.guidance,
        steps: meta.steps,
        xT: goldenF32(golden, 't2i.xT'),
      };
      const result = await pipeline.sample(options);
      // The weights themselves are rounded (bf16 keeps 8 bits): the reference is met only loosely.
      const latent = compare(result.x0, goldenF32(golden, 't2i.latent'));
      console.log(`    fp16 UNet/VAE + bf16 text encoder, t2i.latent: rel L2 ${latent.relL2.toExponential(2)}`);
      assert.ok(latent.relL2 < 5e-2, `rel L2 ${latent.relL2}`);
      assert.ok(result.images.every(Number.isFinite));
      if (gpu.device.features.has('shader-f16')) {
        const f16 = await StableDiffusionPipeline.load(gpu, await loadModelDir(SD), { precision: 'f16' });
        try {
          assert.is(f16.autoencoder.precision, 'f16-packed', "the VAE's force_upcast keeps its activations f32");
          const run = await f16.sample(options);
          expectClose('t2i.latent at --precision f16', run.x0, goldenF32(golden, 't2i.latent'), 2e-2);
        } finally {
          f16.destroy();
        }
      }
    } finally {
      pipeline.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SD 1.5's VAE config builds at full size from its config alone: 83,653,863 parameters", () => {
  const config = JSON.parse(readFileSync('../shared/golden/sd/configs/sd15/vae/config.json', 'utf8'));
  const parameters = requiredAutoencoderWeights(config).reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  console.log(`    SD 1.5 VAE: ${parameters.toLocaleString('en-US')} parameters`);
  assert.is(parameters, 83_653_863);
  const sd21 = JSON.parse(readFileSync('../shared/golden/sd/configs/sd21/vae/config.json', 'utf8'));
  console.log(
    `    SD 2.1 VAE: ${
      requiredAutoencoderWeights(sd21).reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0).toLocaleString('en-US')
    } parameters`,
  );
});

test.run();
