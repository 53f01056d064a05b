/**
 * The demo's latent preview (web/latent_preview.ts): Stable Diffusion latents → RGB by the 4×3
 * matrix, upsampled bilinearly as torch's interpolate(align_corners=False) does.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { latentPreview, LatentPreviewError, SD_LATENT_RGB_FACTORS } from '../web/latent_preview.ts';

const test = suite('latent preview');
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

test('a uniform latent gives the factors-weighted colour at every pixel of the upsampled image', () => {
  const values = [0.5, -1, 2, 0.25];
  const [h, w, height, width] = [2, 3, 16, 24];
  const latents = new Float32Array(4 * h * w);
  values.forEach((v, k) => latents.fill(v, k * h * w, (k + 1) * h * w));
  const rgb = latentPreview(latents, 1, [4, h, w], [height, width]);
  assert.is(rgb.length, 3 * height * width);
  for (let c = 0; c < 3; c++) {
    const expected = values.reduce((sum, v, k) => sum + v * SD_LATENT_RGB_FACTORS[k][c], 0);
    for (let p = 0; p < height * width; p++) close(rgb[c * height * width + p], expected, `channel ${c} pixel ${p}`);
  }
});

test('upsampling interpolates between latent pixels with half-pixel centres, edges held', () => {
  // Latent channel 0 only: a row [a, b] → 4 pixels a, a + (b − a)/4, a + 3(b − a)/4, b (times the red factor).
  const [a, b] = [1, 3];
  const latents = new Float32Array(4 * 2);
  latents.set([a, b]);
  const rgb = latentPreview(latents, 1, [4, 1, 2], [1, 4]);
  const red = SD_LATENT_RGB_FACTORS[0][0];
  [a, a + (b - a) / 4, a + 3 * (b - a) / 4, b].forEach((v, x) => close(rgb[x], red * v, `red at x = ${x}`));
});

test('each image of a batch is mapped from its own latents', () => {
  const latents = new Float32Array(2 * 4);
  latents[4 + 3] = 1; // image 1, channel 3
  const rgb = latentPreview(latents, 2, [4, 1, 1], [2, 2]);
  for (let p = 0; p < 12; p++) close(rgb[p], 0, `image 0 value ${p}`);
  for (let c = 0; c < 3; c++) close(rgb[12 + c * 4], SD_LATENT_RGB_FACTORS[3][c], `image 1 channel ${c}`);
});

test('latents of another channel count, or of the wrong size, are refused by name', () => {
  assert.throws(() => latentPreview(new Float32Array(3 * 4), 1, [3, 2, 2], [16, 16]), (e: Error) => e instanceof LatentPreviewError);
  assert.throws(() => latentPreview(new Float32Array(15), 1, [4, 2, 2], [16, 16]), (e: Error) => /15 values/.test(e.message));
});

test.run();
