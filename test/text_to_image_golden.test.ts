/**
 * Text-to-image on the tiny SD 1.x folder (../shared/golden/sd/tiny-sd, a StableDiffusionPipeline in
 * the layout users download) against diffusers' float64 references: the prompt embeddings, DDIM-10
 * under guidance 7.5 (every step's latents, the final latents, the image), img2img at strength 0.6,
 * and the paper's inversion under a prompt.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { requestGpu } from '../src/gpu/device.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { StableDiffusionPipeline } from '../src/text_to_image_pipeline.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';

/** Sampling, img2img and inversion (issue 22's bound); the embeddings are one pass. */
const SAMPLING_TOLERANCE = 2e-3;
const PASS_TOLERANCE = 1e-4;
const SD = '../shared/golden/sd/tiny-sd';

let pipeline: StableDiffusionPipeline;
const test = suite('text-to-image golden');
test.before(async () => {
  pipeline = await StableDiffusionPipeline.load(await requestGpu(), await loadModelDir(SD));
});
test.after(() => pipeline.destroy());

test('t2i: "a photograph of an astronaut riding a horse", guidance 7.5, DDIM-10 from t2i.xT', async () => {
  const golden = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(golden.metadata!.t2i);
  const positive = await pipeline.encodePrompt([meta.prompt]);
  expectClose('t2i.prompt_embeds', positive.embeds, goldenF32(golden, 't2i.prompt_embeds'), PASS_TOLERANCE);
  expectClose(
    't2i.negative_prompt_embeds',
    (await pipeline.encodePrompt([meta.negative])).embeds,
    goldenF32(golden, 't2i.negative_prompt_embeds'),
    PASS_TOLERANCE,
  );
  const result = await pipeline.sample({
    prompt: meta.prompt,
    negativePrompt: meta.negative,
    guidance: meta.guidance,
    steps: meta.steps,
    xT: goldenF32(golden, 't2i.xT'),
    trajectory: true,
  });
  assert.equal([...result.timesteps].sort((a, b) => b - a), [...goldenI32(golden, 't2i.timesteps')]);
  const trajectory = goldenF32(golden, 't2i.trajectory');
  const per = result.x0.length;
  let worst = 0;
  for (let k = 0; k < meta.steps; k++) {
    const c = expectClose(`t2i.trajectory[${k}]`, result.xs![k + 1], trajectory.subarray(k * per, (k + 1) * per), SAMPLING_TOLERANCE);
    worst = Math.max(worst, c.relL2);
  }
  expectClose('t2i.latent', result.x0, goldenF32(golden, 't2i.latent'), SAMPLING_TOLERANCE);
  expectClose('t2i.image', result.images, goldenF32(golden, 't2i.image'), SAMPLING_TOLERANCE);
  assert.equal(result.imageShape, [3, 64, 64]);
});

test('the prompts of tokenizer_cases.json through the text encoder match text.prompt_embeds', async () => {
  const golden = readGolden('sd/sd.safetensors');
  const ids = goldenI32(golden, 'text.input_ids');
  const cases = JSON.parse(readFileSync('../shared/golden/sd/tokenizer_cases.json', 'utf8'));
  const prompts: string[] = (Array.isArray(cases) ? cases : cases.cases).map((c: { prompt: string }) => c.prompt);
  const encoded = await pipeline.encodePrompt(prompts);
  assert.equal([...encoded.inputIds], [...ids]);
  expectClose('text.prompt_embeds (8 prompts)', encoded.embeds, goldenF32(golden, 'text.prompt_embeds'), PASS_TOLERANCE);
});

test('img2img: "a watercolor of a fox", negative "blurry", guidance 5, strength 0.6 from i2i.image with i2i.noise', async () => {
  const golden = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(golden.metadata!.i2i);
  const init = await pipeline.encodeImages(goldenF32(golden, 'i2i.image'));
  expectClose('i2i.init_latent', init, goldenF32(golden, 'i2i.init_latent'), PASS_TOLERANCE);
  const result = await pipeline.sample({
    prompt: meta.prompt,
    negativePrompt: meta.negative,
    guidance: meta.guidance,
    steps: meta.steps,
    strength: meta.strength,
    initImage: goldenF32(golden, 'i2i.image'),
    xT: goldenF32(golden, 'i2i.noise'),
  });
  assert.equal([...result.timesteps].sort((a, b) => b - a), [...goldenI32(golden, 'i2i.timesteps')]);
  expectClose('i2i.latent', result.x0, goldenF32(golden, 'i2i.latent'), SAMPLING_TOLERANCE);
  expectClose('i2i.output', result.images, goldenF32(golden, 'i2i.output'), SAMPLING_TOLERANCE);
});

test("inversion: the paper's encoding of invert.x0 under the prompt, no guidance, up timesteps 1 … 901", async () => {
  const golden = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(golden.metadata!.t2i);
  const result = await pipeline.encode({ latents: goldenF32(golden, 'invert.x0') }, { prompt: meta.prompt, steps: meta.steps });
  expectClose('invert.xT', result.x0, goldenF32(golden, 'invert.xT'), SAMPLING_TOLERANCE);
});

test.run();
