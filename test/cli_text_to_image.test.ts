/**
 * The command line on the tiny Stable Diffusion folder (../shared/golden/sd/tiny-sd): sample
 * --prompt (t2i and img2img) and encode-prompt and eps against diffusers' references, and bad
 * input refused with status 2, one line, and nothing written.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePng } from '../src/io/png.ts';
import { cli, tensor, writeTensors } from './util/cli_run.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';

const SD = '../shared/golden/sd/tiny-sd';
const SAMPLING_TOLERANCE = 2e-3;
const PASS_TOLERANCE = 1e-4;

let folder = '';
const test = suite('cli on text-to-image models');
test.before(() => {
  folder = mkdtempSync(join(tmpdir(), 'cli-sd-'));
  const sd = readGolden('sd/sd.safetensors');
  writeTensors(join(folder, 't2i-xT.safetensors'), { xT: { data: goldenF32(sd, 't2i.xT'), shape: [1, 4, 8, 8] } });
  writeTensors(join(folder, 'i2i-noise.safetensors'), { xT: { data: goldenF32(sd, 'i2i.noise'), shape: [1, 4, 8, 8] } });
  writeTensors(join(folder, 'i2i-image.safetensors'), { image: { data: goldenF32(sd, 'i2i.image'), shape: [1, 3, 64, 64] } });
  writeTensors(join(folder, 'unet-in.safetensors'), {
    x: { data: goldenF32(sd, 'unet.x'), shape: [2, 4, 8, 8] },
    t: { data: goldenI32(sd, 'unet.t'), shape: [2] },
    encoder_hidden_states: { data: goldenF32(sd, 'unet.encoder_hidden_states'), shape: [2, 77, 32] },
  });
});
test.after(() => rmSync(folder, { recursive: true, force: true }));

test('sample --prompt --xT: the t2i reference, a PNG grid, x0 = latents and image = decoded', async () => {
  const sd = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(sd.metadata!.t2i);
  const out = join(folder, 't2i.safetensors');
  const png = join(folder, 't2i.png');
  const r = await cli([
    'sample',
    '--model',
    SD,
    '--prompt',
    meta.prompt,
    '--negative-prompt',
    meta.negative,
    '--guidance',
    String(meta.guidance),
    '--steps',
    String(meta.steps),
    '--xT',
    join(folder, 't2i-xT.safetensors'),
    '--out',
    png,
    '--out-tensor',
    out,
  ]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli t2i.latent', tensor(out, 'x0'), goldenF32(sd, 't2i.latent'), SAMPLING_TOLERANCE);
  expectClose('cli t2i.image', tensor(out, 'image'), goldenF32(sd, 't2i.image'), SAMPLING_TOLERANCE);
  const grid = await decodePng(new Uint8Array(readFileSync(png)));
  assert.equal([grid.width, grid.height], [(64 + 4) * 2, (64 + 4) * 2]);
});

test('sample --init-image --strength: the img2img reference', async () => {
  const sd = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(sd.metadata!.i2i);
  const out = join(folder, 'i2i.safetensors');
  const r = await cli([
    'sample',
    '--model',
    SD,
    '--prompt',
    meta.prompt,
    '--negative-prompt',
    meta.negative,
    '--guidance',
    String(meta.guidance),
    '--steps',
    String(meta.steps),
    '--init-image',
    join(folder, 'i2i-image.safetensors'),
    '--strength',
    String(meta.strength),
    '--xT',
    join(folder, 'i2i-noise.safetensors'),
    '--out',
    join(folder, 'i2i.png'),
    '--out-tensor',
    out,
  ]);
  assert.is(r.code, 0, r.stderr);
  expectClose('cli i2i.latent', tensor(out, 'x0'), goldenF32(sd, 'i2i.latent'), SAMPLING_TOLERANCE);
  expectClose('cli i2i.output', tensor(out, 'image'), goldenF32(sd, 'i2i.output'), SAMPLING_TOLERANCE);
});

test('encode-prompt and eps: input_ids, prompt_embeds and the conditional UNet', async () => {
  const sd = readGolden('sd/sd.safetensors');
  const cases = JSON.parse(readFileSync('../shared/golden/sd/tokenizer_cases.json', 'utf8')).cases as { prompt: string }[];
  const out = join(folder, 'prompts.safetensors');
  const r = await cli(['encode-prompt', '--model', SD, ...cases.flatMap((c) => ['--prompt', c.prompt]), '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.equal([...tensor(out, 'input_ids')], [...goldenI32(sd, 'text.input_ids')]);
  expectClose('cli text.prompt_embeds', tensor(out, 'prompt_embeds'), goldenF32(sd, 'text.prompt_embeds'), PASS_TOLERANCE);
  // The long prompt is cut at 75 tokens, and the user is told what was cut.
  assert.match(r.stderr, /truncated because CLIP can only handle sequences up to 77 tokens/);
  const eps = join(folder, 'eps.safetensors');
  const e = await cli(['eps', '--model', SD, '--in', join(folder, 'unet-in.safetensors'), '--out', eps]);
  assert.is(e.code, 0, e.stderr);
  expectClose('cli unet.eps', tensor(eps, 'eps'), goldenF32(sd, 'unet.eps'), PASS_TOLERANCE);
});

test('bad input: status 2, one line naming the problem, nothing written', async () => {
  const before = readdirSync(folder).sort();
  const cases: [string[], RegExp][] = [
    [['sample', '--model', SD], /is a text-to-image model: give --prompt/],
    [['sample', '--prompt', 'a cat'], /--prompt is for text-to-image models/],
    [['sample', '--model', SD, '--prompt', 'a', '--strength', '0.5'], /--strength needs --init-image/],
    [['sample', '--model', SD, '--prompt', 'a', '--init-image', 'x.png', '--strength', '1.5'], /--strength must be in \(0, 1\]/],
    [['sample', '--model', SD, '--prompt', 'a', '--guidance', 'high'], /--guidance must be a number/],
    [['sample', '--model', SD, '--prompt', 'a', '--height', '60'], /--height 60 is not a multiple of 8/],
    [['sample', '--model', SD, '--prompt', 'a', '--prompt', 'b', '--n', '3'], /2 --prompts for 3 images/],
    [['sample', '--model', SD, '--prompt', 'a', '--xT', join(folder, 'i2i-image.safetensors')], /no tensor 'xT'/],
    [
      ['sample', '--model', SD, '--prompt', 'a', '--init-image', join(folder, 't2i-xT.safetensors'), '--strength', '0.5'],
      /no tensor 'image'/,
    ],
    [['sample', '--negative-prompt', 'x'], /--negative-prompt is for text-to-image: give --prompt too/],
    [['encode-prompt', '--model', SD], /encode-prompt needs at least one --prompt/],
    [['encode-prompt', '--model', SD, '--prompt', 'a', '--clip-skip', '2'], /--clip-skip 2: .* has 2 layers/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await cli([...argv, '--out', join(folder, argv[0] === 'sample' ? 'never.png' : 'never.safetensors')]);
    const first = r.stderr.split('\n')[0];
    console.log(`    ${argv.slice(0, 4).join(' ').replaceAll(folder + '/', '').padEnd(48)} -> ${r.code}  ${first}`);
    assert.is(r.code, 2, r.stderr);
    assert.ok(first.startsWith('error: '), r.stderr);
    assert.match(r.stderr, pattern);
  }
  assert.equal(readdirSync(folder).sort(), before);
});

test.run();
