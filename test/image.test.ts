import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { gridRgba, rgbaToTensor, tensorToRgba } from '../src/io/image.ts';
import { decodePng } from '../src/io/png.ts';
import { parseSafetensors, toFloat32 } from '../src/io/safetensors.ts';

const s = suite('image');

const pixel = (rgba: Uint8Array, width: number, x: number, y: number) => [...rgba.subarray(4 * (y * width + x), 4 * (y * width + x) + 4)];

s('tensorToRgba maps [-1, 1] to bytes with rounding, clamping and NaN as 0', () => {
  const values = [-1, 1, 0, -2, 2, NaN, 0.5, -0.999];
  const grey = tensorToRgba(Float32Array.from(values), 1, 1, 1, values.length, 0);
  assert.equal([...grey].filter((_, i) => i % 4 === 0), [0, 255, 128, 0, 255, 0, 191, 0]);
  assert.equal([...grey].filter((_, i) => i % 4 === 1), [0, 255, 128, 0, 255, 0, 191, 0], 'grey fills every channel');
  assert.ok([...grey].filter((_, i) => i % 4 === 3).every((a) => a === 255), 'opaque');
});

s('tensorToRgba reads the chosen image of an NCHW batch, channel planes apart', () => {
  // n=2, c=3, h=1, w=2: image 1 has R = [1, -1], G = [-1, 1], B = [0, 0].
  const x = Float32Array.from([0, 0, 0, 0, 0, 0, 1, -1, -1, 1, 0, 0]);
  const rgba = tensorToRgba(x, 2, 3, 1, 2, 1);
  assert.equal([...rgba], [255, 0, 128, 255, 0, 255, 128, 255]);
  const withAlpha = tensorToRgba(Float32Array.from([1, 1, 1, -1]), 1, 4, 1, 1, 0);
  assert.equal([...withAlpha], [255, 255, 255, 0]);
});

s('tensorToRgba refuses inconsistent shapes', () => {
  assert.throws(() => tensorToRgba(new Float32Array(11), 1, 3, 2, 2, 0), /tensor of 11 values is not \[1, 3, 2, 2\]/);
  assert.throws(() => tensorToRgba(new Float32Array(12), 1, 3, 2, 2, 1), /image index 1 is outside the batch of 1/);
  assert.throws(() => tensorToRgba(new Float32Array(8), 1, 2, 2, 2, 0), /images need 1, 3 or 4 channels, not 2/);
});

s('gridRgba lays images out in rows on white, padded and scaled', () => {
  // Three 2x2 grey images with values -1 (black), 0 (mid) and 1 (white), two columns.
  const x = Float32Array.from([-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, -1, -1]);
  const { rgba, width, height } = gridRgba(x, 3, 1, 2, 2, { padding: 1, scale: 2 });
  assert.is(width, (2 * (2 + 1) + 1) * 2);
  assert.is(height, (2 * (2 + 1) + 1) * 2);
  assert.is(rgba.length, width * height * 4);
  assert.equal(pixel(rgba, width, 0, 0), [255, 255, 255, 255], 'padding is white');
  assert.equal(pixel(rgba, width, 1, 1), [255, 255, 255, 255]);
  for (const [x0, y0] of [[2, 2], [5, 5], [2, 5], [5, 2]]) {
    assert.equal(pixel(rgba, width, x0, y0), [0, 0, 0, 255], 'first image, scaled 2x');
  }
  assert.equal(pixel(rgba, width, 6, 2), [255, 255, 255, 255], 'padding between columns');
  assert.equal(pixel(rgba, width, 8, 2), [128, 128, 128, 255], 'second image');
  assert.equal(pixel(rgba, width, 2, 8), [255, 255, 255, 255], 'third image, top row white');
  assert.equal(pixel(rgba, width, 2, 10), [0, 0, 0, 255], 'third image, bottom row black');
  assert.equal(pixel(rgba, width, 9, 9), [255, 255, 255, 255], 'the empty fourth cell is white');
});

s('gridRgba defaults to a near-square grid with 2 pixels of padding', () => {
  const { width, height } = gridRgba(new Float32Array(5 * 3 * 4 * 4), 5, 3, 4, 4);
  assert.is(width, 3 * 6 + 2);
  assert.is(height, 2 * 6 + 2);
  const single = gridRgba(new Float32Array(3 * 4 * 4), 1, 3, 4, 4, { columns: 8, padding: 0 });
  assert.equal([single.width, single.height], [4, 4], 'columns never exceed the images');
  assert.throws(() => gridRgba(new Float32Array(48), 1, 3, 4, 4, { scale: 1.5 }), /grid scale must be a positive integer/);
  assert.throws(() => gridRgba(new Float32Array(48), 1, 3, 4, 4, { padding: -1 }), /grid padding must be a non-negative integer/);
  assert.throws(() => gridRgba(new Float32Array(48), 1, 3, 4, 4, { columns: 0 }), /grid columns must be a positive integer/);
});

s('rgbaToTensor gives [3, H, W] in [-1, 1], alpha composited over white', () => {
  const rgba = Uint8Array.from([255, 0, 51, 255, 0, 0, 0, 0, 0, 0, 0, 128]);
  const t = rgbaToTensor(rgba, 3, 1);
  const expectedHalfBlack = (255 * 127) / 255 / 127.5 - 1;
  assert.equal([...t.subarray(0, 3)], [1, 1, Math.fround(expectedHalfBlack)], 'red plane');
  assert.equal([...t.subarray(3, 6)], [-1, 1, Math.fround(expectedHalfBlack)], 'green plane');
  assert.equal([...t.subarray(6, 9)], [Math.fround(51 / 127.5 - 1), 1, Math.fround(expectedHalfBlack)], 'blue plane');
  const onBlack = rgbaToTensor(rgba, 3, 1, 0);
  assert.is(onBlack[1], -1, 'transparent over black');
  assert.throws(() => rgbaToTensor(rgba, 2, 2), /12 bytes are not a 2x2 RGBA image/);
});

s('every byte survives rgbaToTensor then tensorToRgba', () => {
  const rgba = new Uint8Array(256 * 4);
  for (let v = 0; v < 256; v++) rgba.set([v, 255 - v, (v * 7) & 255, 255], 4 * v);
  const back = tensorToRgba(rgbaToTensor(rgba, 256, 1), 1, 3, 1, 256, 0);
  assert.equal([...back], [...rgba]);
});

s('the golden emoji PNGs are exactly the golden model-space images, both ways', async () => {
  const golden = parseSafetensors(readFileSync('../shared/golden/emoji32_ddim.safetensors'));
  const x0 = toFloat32(golden.tensors.get('invert10.x0')!);
  assert.equal(golden.tensors.get('invert10.x0')!.shape, [4, 3, 32, 32]);
  for (let i = 0; i < 4; i++) {
    const image = await decodePng(readFileSync(`../shared/golden/images/emoji${i}.png`));
    const tensor = rgbaToTensor(image.rgba, image.width, image.height);
    const expected = x0.subarray(i * 3 * 32 * 32, (i + 1) * 3 * 32 * 32);
    assert.ok(tensor.every((v, j) => v === expected[j]), `emoji${i}.png → invert10.x0[${i}]`);
    assert.equal([...tensorToRgba(x0, 4, 3, 32, 32, i)], [...image.rgba], `invert10.x0[${i}] → emoji${i}.png`);
  }
});

s.run();
