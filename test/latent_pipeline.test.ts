/**
 * Latent DDIM end to end on the tiny LDM folder (an LDMPipeline in the layout users download)
 * against diffusers' float64 reference: DDIM-10 on two images' latents, then VQ decoding.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestGpu } from '../src/gpu/device.ts';
import { loadModelDir, readModelDir } from '../src/fs/model_dir.ts';
import { LatentDiffusionPipeline } from '../src/latent_pipeline.ts';
import { readModel } from '../src/pipeline.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';

/** Sampling (issue 21's bound for the 10 steps and the decoder after them). */
const SAMPLING_TOLERANCE = 2e-3;
const LDM = '../shared/golden/sd/tiny-ldm';

const test = suite('latent pipeline');

test('the tiny LDM folder: DDIM-10 latents, code indices and decoded images match diffusers', async () => {
  const golden = readGolden('sd/ldm.safetensors');
  const { paths } = await readModelDir(LDM);
  assert.match(paths.autoencoder!.weights, /vqvae\/diffusion_pytorch_model\.safetensors$/);
  const pipeline = await LatentDiffusionPipeline.load(await requestGpu(), await loadModelDir(LDM), { batch: 2 });
  try {
    assert.equal(pipeline.latentShape, [3, 8, 8]);
    assert.equal(pipeline.imageShape, [3, 32, 32]);
    const result = await pipeline.sample({ steps: 10, xT: goldenF32(golden, 'ldm.xT') });
    assert.equal([...result.timesteps].sort((a, b) => b - a), [...goldenI32(golden, 'ldm.timesteps')]);
    expectClose('ldm.latent', result.x0, goldenF32(golden, 'ldm.latent'), SAMPLING_TOLERANCE);
    const expected = goldenI32(golden, 'ldm.code_indices');
    const equal = expected.filter((v, i) => result.codeIndices![i] === v).length;
    console.log(`    ldm.code_indices: ${equal} of ${expected.length} equal`);
    assert.equal([...result.codeIndices!], [...expected]);
    expectClose('ldm.image', result.images, goldenF32(golden, 'ldm.image'), SAMPLING_TOLERANCE);
  } finally {
    pipeline.destroy();
  }
});

test('non-square latents: the UNet and the decoder take any size the blocks divide', async () => {
  const pipeline = await LatentDiffusionPipeline.load(await requestGpu(), await loadModelDir(LDM), { height: 32, width: 48 });
  try {
    assert.equal(pipeline.latentShape, [3, 8, 12]);
    const result = await pipeline.sample({ steps: 2, seed: 3 });
    assert.equal(result.imageShape, [3, 32, 48]);
    assert.is(result.images.length, 3 * 32 * 48);
    assert.ok(result.images.every(Number.isFinite));
  } finally {
    pipeline.destroy();
  }
});

test('a pipeline folder whose parts do not fit is refused, naming the file and key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-'));
  try {
    cpSync(LDM, dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    const vqConfig = JSON.parse(readFileSync(join(dir, 'vqvae/config.json'), 'utf8'));
    // Latent channels that differ between the UNet and the autoencoder.
    writeFileSync(join(dir, 'vqvae/config.json'), JSON.stringify({ ...vqConfig, vq_embed_dim: 4 }));
    let message = '';
    try {
      readModel(await loadModelDir(dir));
    } catch (error) {
      message = (error as Error).message;
    }
    assert.match(message, /vqvae/);
    writeFileSync(join(dir, 'vqvae/config.json'), JSON.stringify({ ...vqConfig, latent_channels: 4, vq_embed_dim: 4 }));
    // An unknown class, and a missing component folder.
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify({ ...index, vqvae: ['diffusers', 'AutoencoderTiny'] }));
    await loadModelDir(dir).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /'vqvae' has class 'AutoencoderTiny'/));
    rmSync(join(dir, 'vqvae'), { recursive: true });
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index));
    await loadModelDir(dir).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /vqvae\/config\.json is missing/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
