/**
 * AutoencoderKL (the tiny SD folder's vae/) and VQModel (the tiny LDM folder's vqvae/) against
 * diffusers' float64 references in ../shared/golden/sd: encode, decode, VQ's codebook choice.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { requestGpu } from '../src/gpu/device.ts';
import {
  Autoencoder,
  AutoencoderInputError,
  autoencoderPrecision,
  blendTiles,
  readAutoencoder,
  type Tile,
} from '../src/models/autoencoder_model.ts';
import { parseAutoencoderConfig } from '../src/models/autoencoder_config.ts';
import { ModelConfigError } from '../src/models/unet_2d_config.ts';
import { compare, expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';

/** A single pass (issue 21's bound for encode and decode). */
const PASS_TOLERANCE = 1e-4;

const SD = '../shared/golden/sd';

function readComponent(dir: string) {
  return readAutoencoder({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
  });
}

async function rejects(run: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert.instance(error, AutoencoderInputError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable('expected an AutoencoderInputError');
}

const test = suite('autoencoder golden');

test('AutoencoderKL: encode (mean, log-variance) and decode match diffusers', async () => {
  const gpu = await requestGpu();
  const golden = readGolden('sd/sd.safetensors');
  const vae = Autoencoder.load(gpu, readComponent(`${SD}/tiny-sd/vae`));
  try {
    const image = goldenF32(golden, 'vae.image');
    const encoded = await vae.encode(image, [1, 3, 64, 64]);
    assert.equal(encoded.shape, [1, 4, 8, 8]);
    expectClose('vae.mean', encoded.latents, goldenF32(golden, 'vae.mean'), PASS_TOLERANCE);
    expectClose('vae.logvar', encoded.logvar!, goldenF32(golden, 'vae.logvar'), PASS_TOLERANCE);
    const decoded = await vae.decode(goldenF32(golden, 'vae.z'), [1, 4, 8, 8]);
    assert.equal(decoded.shape, [1, 3, 64, 64]);
    assert.is(decoded.codeIndices, undefined);
    expectClose('vae.decoded', decoded.image, goldenF32(golden, 'vae.decoded'), PASS_TOLERANCE);
  } finally {
    vae.destroy();
  }
});

test('VQModel: encode, quantized and unquantized decode, code indices', async () => {
  const gpu = await requestGpu();
  const golden = readGolden('sd/ldm.safetensors');
  const vq = Autoencoder.load(gpu, readComponent(`${SD}/tiny-ldm/vqvae`));
  try {
    const encoded = await vq.encode(goldenF32(golden, 'vq.image'), [1, 3, 32, 32]);
    assert.is(encoded.logvar, undefined);
    expectClose('vq.encoded', encoded.latents, goldenF32(golden, 'vq.encoded'), PASS_TOLERANCE);
    const h = goldenF32(golden, 'vq.h');
    const decoded = await vq.decode(h, [1, 3, 8, 8]);
    expectClose('vq.decoded', decoded.image, goldenF32(golden, 'vq.decoded'), PASS_TOLERANCE);
    const expected = goldenI32(golden, 'vq.code_indices');
    const mismatches = expected.filter((v, i) => decoded.codeIndices![i] !== v).length;
    console.log(`    vq.code_indices: ${expected.length - mismatches} of ${expected.length} equal`);
    assert.equal([...decoded.codeIndices!], [...expected]);
    const unquantized = await vq.decode(h, [1, 3, 8, 8], { forceNotQuantize: true });
    assert.is(unquantized.codeIndices, undefined);
    expectClose('vq.decoded_unquantized', unquantized.image, goldenF32(golden, 'vq.decoded_unquantized'), PASS_TOLERANCE);
  } finally {
    vq.destroy();
  }
});

test('a batch split to fit a binding limit decodes each image as alone', async () => {
  const gpu = await requestGpu();
  const golden = readGolden('sd/ldm.safetensors');
  const model = readComponent(`${SD}/tiny-ldm/vqvae`);
  const whole = Autoencoder.load(gpu, model);
  // The decoder's largest tensor is 64 channels x 32 x 32 x 4 bytes = 256 KiB an image.
  const split = Autoencoder.load(gpu, model, { limits: { maxStorageBufferBindingSize: 300 * 1024 } });
  try {
    const h = goldenF32(golden, 'ldm.latent');
    const a = await whole.decode(h, [2, 3, 8, 8]);
    const b = await split.decode(h, [2, 3, 8, 8]);
    assert.equal([...b.image], [...a.image]);
    assert.equal([...b.codeIndices!], [...goldenI32(golden, 'ldm.code_indices')]);
  } finally {
    whole.destroy();
    split.destroy();
  }
});

test('blendTiles: linear ramps over the overlap, each tile cut to the limit (diffusers tiled_decode)', () => {
  const flat = (value: number, height: number, width: number): Tile => ({
    data: new Float32Array(height * width).fill(value),
    channels: 1,
    height,
    width,
  });
  // Two tiles side by side, 4 columns each, blended over 2 and kept to 3.
  const row = blendTiles([[flat(1, 1, 4), flat(0, 1, 4)]], 2, 3);
  assert.equal([row.height, row.width], [1, 6]);
  // The right tile's columns 0 and 1 are 1·(1 - x/2) + 0·(x/2): 1 and 0.5.
  assert.equal([...row.data], [1, 1, 1, 1, 0.5, 0]);
  // Four tiles: the lower right one blends with the tile above first, then with its (blended) left neighbour.
  const grid = blendTiles([[flat(0, 2, 2), flat(0, 2, 2)], [flat(4, 2, 2), flat(8, 2, 2)]], 1, 2);
  assert.equal([grid.height, grid.width], [4, 4]);
  // extent 1: a tile's first row (column) becomes its neighbour's last: the lower tiles' first rows are the
  // upper tiles' zeros, and the lower right tile's first column then the lower left's (blended) last.
  assert.equal([...grid.data], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 8]);
});

test('an image over the binding limit is split into blended tiles (tiny SD VAE at 64²; VQ codes unchanged)', async () => {
  const gpu = await requestGpu();
  const golden = readGolden('sd/sd.safetensors');
  const model = readComponent(`${SD}/tiny-sd/vae`);
  const whole = Autoencoder.load(gpu, model);
  // The decoder's largest tensor at 64² is 64 channels x 64 x 64 x 4 bytes = 1 MiB; a 32² tile's, 256 KiB.
  const limits = { maxStorageBufferBindingSize: 300 * 1024 };
  const tiled = Autoencoder.load(gpu, model, { limits });
  try {
    assert.is(whole.tileSize('decoder', 8, 8), null);
    assert.is(tiled.tileSize('decoder', 8, 8), 4);
    assert.is(tiled.tileSize('encoder', 8, 8), 4);
    const z = goldenF32(golden, 'vae.z');
    const a = await whole.decode(z, [1, 4, 8, 8]);
    const b = await tiled.decode(z, [1, 4, 8, 8]);
    assert.equal(b.shape, [1, 3, 64, 64]);
    assert.ok(b.image.every(Number.isFinite));
    const decoded = compare(b.image, a.image);
    console.log(
      `    tiled decode (4-latent tiles) vs whole: rel L2 ${decoded.relL2.toExponential(2)}, max |diff| ${decoded.maxAbs.toExponential(2)}`,
    );
    // Not exact: GroupNorm's statistics and the attention are per tile (as in diffusers' tiled VAE).
    const image = goldenF32(golden, 'vae.image');
    const encodedWhole = await whole.encode(image, [1, 3, 64, 64]);
    const encodedTiled = await tiled.encode(image, [1, 3, 64, 64]);
    const encoded = compare(encodedTiled.latents, encodedWhole.latents);
    console.log(`    tiled encode (32-pixel tiles) vs whole: mean rel L2 ${encoded.relL2.toExponential(2)}`);
    assert.equal(encodedTiled.shape, [1, 4, 8, 8]);

    // VQ: each code depends on its latent alone, so tiles give the same codes as one pass.
    const ldm = readGolden('sd/ldm.safetensors');
    const vqModel = readComponent(`${SD}/tiny-ldm/vqvae`);
    const vqWhole = Autoencoder.load(gpu, vqModel);
    const vqTiled = Autoencoder.load(gpu, vqModel, { limits: { maxStorageBufferBindingSize: 160 * 1024 } });
    try {
      const h = goldenF32(ldm, 'ldm.latent');
      assert.is(vqTiled.tileSize('decoder', 8, 8), 4);
      const [one, split] = [await vqWhole.decode(h, [2, 3, 8, 8]), await vqTiled.decode(h, [2, 3, 8, 8])];
      assert.equal([...split.codeIndices!], [...goldenI32(ldm, 'ldm.code_indices')]);
      const c = compare(split.image, one.image);
      console.log(`    tiled VQ decode vs whole: rel L2 ${c.relL2.toExponential(2)}; code indices equal`);
    } finally {
      vqWhole.destroy();
      vqTiled.destroy();
    }
  } finally {
    whole.destroy();
    tiled.destroy();
  }
});

test('latents or images of the wrong shape are refused by name', async () => {
  const gpu = await requestGpu();
  const vae = Autoencoder.load(gpu, readComponent(`${SD}/tiny-sd/vae`));
  try {
    await rejects(() => vae.decode(new Float32Array(3 * 64), [1, 3, 8, 8]), /4 channels, not 3/);
    await rejects(
      () => vae.encode(new Float32Array(3 * 60 * 60), [1, 3, 60, 60]),
      /not a multiple of the autoencoder's downscale factor 8/,
    );
  } finally {
    vae.destroy();
  }
});

test('configs: diffusers defaults, refusals by key', () => {
  const sd15 = parseAutoencoderConfig(JSON.parse(readFileSync(`${SD}/configs/sd15/vae/config.json`, 'utf8')));
  // SD 1.5's VAE config has no scaling_factor: diffusers' default applies.
  assert.is(sd15.scalingFactor, 0.18215);
  assert.is(sd15.latentChannels, 4);
  const base = { _class_name: 'AutoencoderKL', block_out_channels: [32, 64] };
  // force_upcast left out: AutoencoderKL upcasts, VQModel does not (diffusers' defaults); 'f16' follows it.
  const vq = parseAutoencoderConfig({ ...base, _class_name: 'VQModel' });
  assert.is(parseAutoencoderConfig(base).forceUpcast, true);
  assert.is(vq.forceUpcast, false);
  assert.is(autoencoderPrecision(parseAutoencoderConfig(base), 'f16'), 'f16-packed');
  assert.is(autoencoderPrecision(vq, 'f16'), 'f16');
  assert.is(autoencoderPrecision(parseAutoencoderConfig(base), 'f32'), 'f32');
  assert.throws(
    () => parseAutoencoderConfig({ ...base, norm_type: 'spatial' }),
    (e: Error) => e instanceof ModelConfigError && /norm_type/.test(e.message),
  );
  assert.throws(() => parseAutoencoderConfig({ ...base, shift_factor: 0.1159 }), /shift_factor/);
  assert.throws(() => parseAutoencoderConfig({ ...base, up_block_types: ['UpDecoderBlock2D'] }), /up_block_types must list 2 blocks/);
  assert.throws(
    () => parseAutoencoderConfig({ ...base, down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] }),
    /AttnDownEncoderBlock2D/,
  );
  assert.throws(() => parseAutoencoderConfig({ ...base, _class_name: 'AutoencoderTiny' }), /AutoencoderTiny/);
  assert.throws(() => parseAutoencoderConfig({ ...base, wobble: 1 }), /unsupported option\(s\): wobble/);
});

test.run();
