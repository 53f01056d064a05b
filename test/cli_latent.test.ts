/**
 * The command line on latent models (the tiny LDM and the tiny SD folder's VAE in
 * ../shared/golden/sd): vae-encode, vae-decode and sample against diffusers' references, and every
 * bad input refused with status 2, one line, and no file written.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePng } from '../src/io/png.ts';
import { parseSafetensors } from '../src/io/safetensors.ts';
import { cli, tensor, writeTensors } from './util/cli_run.ts';
import { randomUNetSafetensors } from '../src/models/random_weights.ts';
import { expectClose, goldenF32, readGolden } from './util/compare.ts';

const LDM = '../shared/golden/sd/tiny-ldm';
const SAMPLING_TOLERANCE = 2e-3;
const PASS_TOLERANCE = 1e-4;

let folder = '';
const test = suite('cli on latent models');
test.before(() => {
  folder = mkdtempSync(join(tmpdir(), 'cli-latent-'));
  const ldm = readGolden('sd/ldm.safetensors');
  const sd = readGolden('sd/sd.safetensors');
  writeTensors(join(folder, 'xT.safetensors'), { xT: { data: goldenF32(ldm, 'ldm.xT'), shape: [2, 3, 8, 8] } });
  writeTensors(join(folder, 'vq-h.safetensors'), { z: { data: goldenF32(ldm, 'vq.h'), shape: [1, 3, 8, 8] } });
  writeTensors(join(folder, 'vq-image.safetensors'), { image: { data: goldenF32(ldm, 'vq.image'), shape: [1, 3, 32, 32] } });
  writeTensors(join(folder, 'vae-image.safetensors'), { image: { data: goldenF32(sd, 'vae.image'), shape: [1, 3, 64, 64] } });
});
test.after(() => rmSync(folder, { recursive: true, force: true }));

test('sample --model <LDM folder> --xT: x0 = the final latents, image = the decoded images, a PNG grid', async () => {
  const golden = readGolden('sd/ldm.safetensors');
  const out = join(folder, 'ldm.safetensors');
  const png = join(folder, 'ldm.png');
  const r = await cli([
    'sample',
    '--model',
    LDM,
    '--xT',
    join(folder, 'xT.safetensors'),
    '--steps',
    '10',
    '--out',
    png,
    '--out-tensor',
    out,
  ]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli ldm.latent', tensor(out, 'x0'), goldenF32(golden, 'ldm.latent'), SAMPLING_TOLERANCE);
  expectClose('cli ldm.image', tensor(out, 'image'), goldenF32(golden, 'ldm.image'), SAMPLING_TOLERANCE);
  const grid = await decodePng(new Uint8Array(readFileSync(png)));
  // Two 32x32 images side by side, 2 px apart and around, at scale 2.
  assert.equal([grid.width, grid.height], [(2 * 34 + 2) * 2, (34 + 2) * 2]);
});

test('sample --height/--width: non-square images of a latent model', async () => {
  const out = join(folder, 'wide.safetensors');
  const r = await cli([
    'sample',
    '--model',
    LDM,
    '--n',
    '1',
    '--steps',
    '2',
    '--height',
    '32',
    '--width',
    '48',
    '--out',
    join(folder, 'wide.png'),
    '--out-tensor',
    out,
  ]);
  assert.is(r.code, 0, r.stderr);
  const file = parseSafetensors(new Uint8Array(readFileSync(out)));
  assert.equal(file.tensors.get('x0')!.shape, [1, 3, 8, 12]);
  assert.equal(file.tensors.get('image')!.shape, [1, 3, 32, 48]);
});

test('vae-encode and vae-decode: VQ (latents before quantization; decode with and without it) and KL (mean, logvar)', async () => {
  const ldm = readGolden('sd/ldm.safetensors');
  const sd = readGolden('sd/sd.safetensors');
  const encoded = join(folder, 'vq-latents.safetensors');
  let r = await cli(['vae-encode', '--model', LDM, '--in', join(folder, 'vq-image.safetensors'), '--out', encoded]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli vq.encoded', tensor(encoded, 'latents'), goldenF32(ldm, 'vq.encoded'), PASS_TOLERANCE);
  const decoded = join(folder, 'vq-decoded.safetensors');
  r = await cli([
    'vae-decode',
    '--model',
    LDM,
    '--in',
    join(folder, 'vq-h.safetensors'),
    '--out',
    decoded,
    '--png',
    join(folder, 'vq.png'),
  ]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli vq.decoded', tensor(decoded, 'image'), goldenF32(ldm, 'vq.decoded'), PASS_TOLERANCE);
  r = await cli(['vae-decode', '--model', LDM, '--in', join(folder, 'vq-h.safetensors'), '--out', decoded, '--no-quantize']);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli vq.decoded_unquantized', tensor(decoded, 'image'), goldenF32(ldm, 'vq.decoded_unquantized'), PASS_TOLERANCE);

  // The tiny SD folder's UNet is text-conditioned (not built yet): its VAE is checked in a folder of its own.
  const kl = join(folder, 'kl');
  cpSync(LDM, kl, { recursive: true });
  rmSync(join(kl, 'vqvae'), { recursive: true });
  cpSync('../shared/golden/sd/tiny-sd/vae', join(kl, 'vae'), { recursive: true });
  const index = JSON.parse(readFileSync(join(kl, 'model_index.json'), 'utf8'));
  delete index.vqvae;
  writeFileSync(join(kl, 'model_index.json'), JSON.stringify({ ...index, vae: ['diffusers', 'AutoencoderKL'] }));
  // The UNet must take the VAE's 4 latent channels: one of that shape with random weights.
  const unetConfig = JSON.parse(readFileSync(join(kl, 'unet/config.json'), 'utf8'));
  r = await cli(['vae-encode', '--model', kl, '--in', join(folder, 'vae-image.safetensors'), '--out', encoded]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /unet\/config\.json: the UNet takes 3 channels .* vae\/config\.json has latents of 4 channels/);
  const config4 = { ...unetConfig, in_channels: 4, out_channels: 4 };
  writeFileSync(join(kl, 'unet/config.json'), JSON.stringify(config4));
  writeFileSync(join(kl, 'unet/diffusion_pytorch_model.safetensors'), randomUNetSafetensors(config4));
  r = await cli(['vae-encode', '--model', kl, '--in', join(folder, 'vae-image.safetensors'), '--out', encoded]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli vae.mean', tensor(encoded, 'mean'), goldenF32(sd, 'vae.mean'), PASS_TOLERANCE);
  expectClose('cli vae.logvar', tensor(encoded, 'logvar'), goldenF32(sd, 'vae.logvar'), PASS_TOLERANCE);
  writeTensors(join(folder, 'vae-z.safetensors'), { z: { data: goldenF32(sd, 'vae.z'), shape: [1, 4, 8, 8] } });
  r = await cli(['vae-decode', '--model', kl, '--in', join(folder, 'vae-z.safetensors'), '--out', decoded]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli vae.decoded', tensor(decoded, 'image'), goldenF32(sd, 'vae.decoded'), PASS_TOLERANCE);
  // Half the weights: f16-packed, as f16 runs under the tiny VAE's force_upcast (activations stay f32).
  for (const precision of ['f16-packed', 'f16']) {
    r = await cli(['vae-decode', '--model', kl, '--in', join(folder, 'vae-z.safetensors'), '--out', decoded, '--precision', precision]);
    assert.is(r.code, 0, r.stderr);
    expectClose(`cli vae.decoded --precision ${precision}`, tensor(decoded, 'image'), goldenF32(sd, 'vae.decoded'), 2e-3);
  }
  r = await cli(['vae-decode', '--model', kl, '--in', join(folder, 'vae-z.safetensors'), '--out', decoded, '--no-quantize']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--no-quantize is for VQModel/);
  rmSync(kl, { recursive: true });
});

test('bad input: status 2, one line naming the problem, nothing written', async () => {
  const before = readdirSync(folder).sort();
  const bad = join(folder, 'bad');
  cpSync(LDM, bad, { recursive: true });
  const cases: [string[], RegExp][] = [
    [['sample', '--model', LDM, '--height', '30'], /--height 30 is not a multiple of 4/],
    [['sample', '--height', '64'], /--height and --width are for latent models/],
    [['sample', '--model', LDM, '--xT', join(folder, 'vq-image.safetensors')], /no tensor 'xT'/],
    [
      ['sample', '--model', LDM, '--xT', join(folder, 'xT.safetensors'), '--height', '64'],
      /shape \[2, 3, 8, 8\] but this model needs \[N, 3, 16, 8\]/,
    ],
    [['vae-decode', '--model', LDM, '--in', join(folder, 'vq-image.safetensors')], /no tensor 'z'/],
    [['vae-decode', '--model', LDM, '--in', join(folder, 'xT.safetensors')], /no tensor 'z'/],
    [['vae-encode', '--model', LDM, '--in', join(folder, 'vq-h.safetensors')], /no tensor 'image'/],
    [['vae-encode', '--in', join(folder, 'vq-image.safetensors')], /has no autoencoder/],
    [['vae-encode', '--model', LDM], /vae-encode needs --in FILE/],
    [['encode', '--model', LDM, '--image', 'x.png'], /not in the command line yet/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await cli([...argv, '--out', join(folder, argv[0] === 'sample' ? 'never.png' : 'never.safetensors')]);
    const first = r.stderr.split('\n')[0];
    console.log(`    ${argv.slice(0, 3).join(' ').replaceAll(folder + '/', '').padEnd(40)} -> ${r.code}  ${first}`);
    assert.is(r.code, 2, r.stderr);
    assert.ok(first.startsWith('error: '), r.stderr);
    assert.match(r.stderr, pattern);
  }
  // A missing component, an unknown class, latent channels that differ, a truncated weights file.
  const index = JSON.parse(readFileSync(join(bad, 'model_index.json'), 'utf8'));
  const vq = JSON.parse(readFileSync(join(bad, 'vqvae/config.json'), 'utf8'));
  const folderCases: [() => void, RegExp][] = [
    [
      () => writeFileSync(join(bad, 'model_index.json'), JSON.stringify({ ...index, vqvae: ['diffusers', 'Transformer2DModel'] })),
      /model_index\.json: 'vqvae' has class 'Transformer2DModel'/,
    ],
    [() => {
      writeFileSync(join(bad, 'model_index.json'), JSON.stringify(index));
      writeFileSync(join(bad, 'vqvae/config.json'), JSON.stringify({ ...vq, vq_embed_dim: 4 }));
    }, /vqvae: the weights do not match config\.json/],
    [() => {
      writeFileSync(join(bad, 'vqvae/config.json'), JSON.stringify(vq));
      truncateSync(join(bad, 'vqvae/diffusion_pytorch_model.safetensors'), 4000);
    }, /vqvae\/diffusion_pytorch_model\.safetensors/],
    [() => rmSync(join(bad, 'vqvae'), { recursive: true }), /vqvae\/config\.json is missing/],
  ];
  for (const [change, pattern] of folderCases) {
    change();
    const r = await cli(['sample', '--model', bad, '--n', '1', '--steps', '1', '--out', join(folder, 'never.png')]);
    console.log(`    ${'(folder) sample'.padEnd(40)} -> ${r.code}  ${r.stderr.split('\n')[0]}`);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
  }
  rmSync(bad, { recursive: true });
  assert.equal(readdirSync(folder).sort(), before);
});

test.run();
