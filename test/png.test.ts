import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { decodePng, encodePng, PngError } from '../src/io/png.ts';
import { mulberry32 } from './util/random.ts';

const s = suite('png');

async function rejects(bytes: Uint8Array, pattern: RegExp, options?: { maxPixels?: number }): Promise<void> {
  try {
    await decodePng(bytes, options);
  } catch (error) {
    assert.instance(error, PngError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a PngError matching ${pattern}`);
}

// A deliberately separate, bare-bones PNG writer for hand-made (and broken) files.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function chunk(type: string, data: ArrayLike<number>): number[] {
  const body = [...type].map((ch) => ch.charCodeAt(0)).concat(Array.from(data));
  let crc = 0xffffffff;
  for (const b of body) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return [...u32(data.length), ...body, ...u32((crc ^ 0xffffffff) >>> 0)];
}

const u32 = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function ihdr(width: number, height: number, bitDepth = 8, colorType = 6, interlace = 0): number[] {
  return chunk('IHDR', [...u32(width), ...u32(height), bitDepth, colorType, 0, 0, interlace]);
}

async function zlib(bytes: number[] | Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([Uint8Array.from(bytes)]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const png = (...chunks: number[][]) => new Uint8Array([...SIGNATURE, ...chunks.flat()]);
const IEND = chunk('IEND', []);

const base64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

s('encode then decode gives the same pixels, for noise, gradients and edge sizes', async () => {
  const random = mulberry32(5);
  for (const [width, height] of [[1, 1], [13, 7], [300, 1], [1, 40], [64, 48]]) {
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < rgba.length; i++) {
      const x = (i >> 2) % width;
      // Half smooth (favouring Sub/Up/Avg/Paeth), half noise (favouring None).
      rgba[i] = x < width / 2 ? (x * 3 + Math.floor(i / (4 * width)) * 5 + (i & 3) * 40) & 255 : Math.floor(random() * 256);
    }
    const encoded = await encodePng(rgba, width, height);
    const decoded = await decodePng(encoded);
    assert.is(decoded.width, width);
    assert.is(decoded.height, height);
    assert.is(decoded.colorType, 6);
    assert.is(decoded.bitDepth, 8);
    assert.ok(decoded.rgba.every((v, i) => v === rgba[i]), `${width}x${height} pixels survive`);
  }
});

s('encodePng refuses sizes that do not match the pixels', async () => {
  for (
    const [bytes, width, height, pattern] of [
      [new Uint8Array(16), 2, 3, /16 bytes given for 2x3 RGBA, need 24/],
      [new Uint8Array(0), 0, 0, /width 0 is not an integer/],
      [new Uint8Array(8), 2.5, 1, /width 2.5/],
    ] as const
  ) {
    try {
      await encodePng(bytes, width, height);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, PngError);
      assert.match((error as Error).message, pattern);
    }
  }
});

s('the golden emoji PNGs decode as 32x32 images', async () => {
  const names = ['grey', '', 'RGB', 'palette', 'grey+alpha', '', 'RGBA'];
  for (let i = 0; i < 4; i++) {
    const file = `../shared/golden/images/emoji${i}.png`;
    const image = await decodePng(readFileSync(file));
    console.log(`    emoji${i}.png: ${image.width}x${image.height}, ${names[image.colorType]} ${image.bitDepth}-bit`);
    assert.is(image.width, 32);
    assert.is(image.height, 32);
    assert.is(image.rgba.length, 32 * 32 * 4);
    assert.ok(image.rgba.some((v) => v < 200), 'not blank');
  }
});

s('decodes every colour type, bit depth and filter type as independent encoders wrote them', async () => {
  for (const fixture of FIXTURES) {
    const image = await decodePng(base64(fixture.png));
    const expected = base64(fixture.rgba);
    assert.is(image.colorType, fixture.colorType, fixture.name);
    assert.is(image.bitDepth, fixture.bitDepth, fixture.name);
    assert.is(image.rgba.length, expected.length, fixture.name);
    const wrong = image.rgba.findIndex((v, i) => v !== expected[i]);
    assert.is(wrong, -1, `${fixture.name}: first wrong byte`);
  }
});

s('hand-made files: sub-byte rows, unknown ancillary chunks, split IDAT, trailing data after IEND', async () => {
  // 3x2 grey 2-bit: rows are 1 byte each, the last pixel's 2 low bits unused.
  const raw = [0, 0b00011011, 2, 0b11000000];
  const compressed = [...await zlib(raw)];
  const image = await decodePng(
    new Uint8Array([
      ...png(ihdr(3, 2, 2, 0), chunk('tEXt', [65, 0, 66]), chunk('IDAT', compressed.slice(0, 3)), chunk('IDAT', compressed.slice(3)), IEND),
      1,
      2,
      3,
    ]),
  );
  // Row 0: 0, 1, 2 → 0, 85, 170; row 1 (Up adds whole bytes): 0b11011011 → 3, 1, 2.
  assert.equal([...image.rgba].filter((_, i) => i % 4 === 0), [0, 85, 170, 255, 85, 170]);
  assert.equal([...image.rgba].filter((_, i) => i % 4 === 3), [255, 255, 255, 255, 255, 255]);
});

s('rejects files that are not PNGs or are cut short', async () => {
  const good = await encodePng(new Uint8Array(4 * 4 * 4).fill(100), 4, 4);
  await rejects(new Uint8Array([1, 2, 3]), /not a PNG file/);
  await rejects(Uint8Array.from(good).fill(0, 0, 1), /not a PNG file: the 8-byte signature is missing/);
  await rejects(good.subarray(0, good.length - 20), /truncated chunk 'IDAT' at byte 33/);
  await rejects(good.subarray(0, good.length - 12), /truncated file: no IEND chunk/);
  await rejects(good.subarray(0, 8 + 8 + 5), /truncated chunk 'IHDR' at byte 8: needs 25 bytes, 13 left/);
  const flipped = Uint8Array.from(good);
  flipped[42] ^= 4;
  await rejects(flipped, /bad CRC in chunk 'IDAT' at byte 33/);
  const badLength = Uint8Array.from(good);
  badLength.set([0xff, 0xff, 0xff, 0xf0], 33);
  await rejects(badLength, /chunk 'IDAT' at byte 33: length 4294967280 exceeds 2\^31-1/);
  const badType = Uint8Array.from(good);
  badType[37] = 0x31;
  await rejects(badType, /invalid chunk type at byte 33: byte 49 is not a letter/);
});

s('rejects bad headers and interlaced images', async () => {
  const idat = chunk('IDAT', await zlib([0, 0, 0, 0, 0]));
  await rejects(png(chunk('tEXt', [65, 0]), ihdr(1, 1), idat, IEND), /first chunk is 'tEXt', not IHDR/);
  await rejects(png(chunk('IHDR', [0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0]), idat, IEND), /IHDR chunk has 12 bytes, not 13/);
  await rejects(png(ihdr(1, 1), ihdr(1, 1), idat, IEND), /more than one IHDR chunk/);
  await rejects(png(ihdr(0, 5), idat, IEND), /invalid image size 0x5/);
  await rejects(png(ihdr(2 ** 31, 1), idat, IEND), /invalid image size 2147483648x1/);
  await rejects(png(ihdr(100_000, 100_000), idat, IEND), /image of 100000x100000 exceeds the limit of 67108864 pixels/);
  await rejects(png(ihdr(10, 10), idat, IEND), /exceeds the limit of 99 pixels/, { maxPixels: 99 });
  await rejects(png(ihdr(1, 1, 4, 2), idat, IEND), /invalid bit depth 4 for colour type 2/);
  await rejects(png(ihdr(1, 1, 8, 5), idat, IEND), /invalid colour type 5/);
  await rejects(png(chunk('IHDR', [...u32(1), ...u32(1), 8, 6, 1, 0, 0]), idat, IEND), /unknown compression method 1/);
  await rejects(png(chunk('IHDR', [...u32(1), ...u32(1), 8, 6, 0, 1, 0]), idat, IEND), /unknown filter method 1/);
  await rejects(png(ihdr(1, 1, 8, 6, 2), idat, IEND), /unknown interlace method 2/);
  await rejects(base64(INTERLACED_RGB), /Adam7 interlaced PNGs are not supported/);
});

s('rejects broken chunks and image data', async () => {
  const pixel = (rows: number[]) => zlib(rows).then((z) => chunk('IDAT', z));
  const idat = await pixel([0, 1, 2, 3, 4]);
  await rejects(png(ihdr(1, 1), chunk('ABCD', []), idat, IEND), /unsupported critical chunk 'ABCD'/);
  await rejects(png(ihdr(1, 1), IEND), /no IDAT chunk/);
  await rejects(png(ihdr(1, 1, 8, 3), await pixel([0, 0]), IEND), /palette image without a PLTE chunk/);
  await rejects(
    png(ihdr(1, 1, 8, 3), chunk('PLTE', [1, 2]), await pixel([0, 0]), IEND),
    /PLTE chunk of 2 bytes is not 1 to 256 RGB entries/,
  );
  await rejects(
    png(ihdr(2, 1, 8, 3), chunk('PLTE', [1, 2, 3, 4, 5, 6]), await pixel([0, 1, 2]), IEND),
    /palette index 2 at \(1, 0\) is outside the 2-entry palette/,
  );
  await rejects(png(ihdr(1, 1, 8, 0), chunk('tRNS', [0]), await pixel([0, 7]), IEND), /tRNS chunk has 1 bytes, not 2/);
  await rejects(png(ihdr(1, 1), chunk('IDAT', [1, 2, 3, 4, 5, 6]), IEND), /image data is not a valid zlib stream/);
  const stream = [...await zlib([0, 1, 2, 3, 4])];
  // Node's zlib reports the cut itself; Deno's accepts it and the decoder's own checks catch it.
  await rejects(png(ihdr(1, 1), chunk('IDAT', stream.slice(0, 4)), IEND), /not a valid zlib stream|image data too short: \d of 5/);
  await rejects(png(ihdr(1, 1), chunk('IDAT', stream.slice(0, -2)), IEND), /not a valid zlib stream|checksum mismatch/);
  const wrongSum = stream.slice();
  wrongSum[wrongSum.length - 1] ^= 1;
  await rejects(png(ihdr(1, 1), chunk('IDAT', wrongSum), IEND), /not a valid zlib stream|checksum mismatch/);
  await rejects(png(ihdr(1, 1), chunk('IDAT', [...stream, 0]), IEND), /not a valid zlib stream|checksum mismatch/);
  await rejects(png(ihdr(1, 2), idat, IEND), /image data too short: 5 of 10 bytes/);
  await rejects(png(ihdr(1, 1), await pixel([0, 1, 2, 3, 4, 5]), IEND), /image data inflates to more than the 5 bytes the header implies/);
  await rejects(png(ihdr(1, 1), await pixel([5, 1, 2, 3, 4]), IEND), /unknown filter type 5 in row 0/);
});

s('a small file that inflates to a huge image is stopped at the declared size', async () => {
  // 16 MB of zeros compress to ~16 KB; the header claims 1x1, so decoding must stop early.
  const bomb = await zlib(new Uint8Array(1 << 24));
  await rejects(png(ihdr(1, 1), chunk('IDAT', bomb), IEND), /inflates to more than the 5 bytes/);
});

s.run();

// Made with pypng 0.20220715 (colour types, bit depths, tRNS; filter 0) and pngjs 7.0.0 (filter
// types 1-4), each expected RGBA decoded by pypng, 16-bit samples reduced to their high byte.
const FIXTURES: { name: string; colorType: number; bitDepth: number; png: string; rgba: string }[] = [
  {
    name: 'grey 1-bit',
    colorType: 0,
    bitDepth: 1,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADAQAAAABzTfhVAAAADklEQVR4nGO4wTCBoQAABl4B2QARSj4AAAAASUVORK5CYII=',
    rgba: '//////////8AAAD/////////////////AAAA/wAAAP//////AAAA/wAAAP////////////////8AAAD/',
  },
  {
    name: 'grey 2-bit',
    colorType: 0,
    bitDepth: 2,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADAgAAAAA07YKFAAAAEUlEQVR4nGNwbGCQOsBw7wAAC48DOnwvOqAAAAAASUVORK5CYII=',
    rgba: 'VVVV/wAAAP8AAAD/VVVV/6qqqv8AAAD/VVVV/6qqqv+qqqr///////////9VVVX//////6qqqv//////',
  },
  {
    name: 'grey 4-bit',
    colorType: 0,
    bitDepth: 4,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADBAAAAAC7rXclAAAAFElEQVR4nGMo7G5gOJ5ygUGG6wAAG9YEXnDuFbkAAAAASUVORK5CYII=',
    rgba: 'd3d3/xEREf+IiIj/u7u7/4iIiP/MzMz/d3d3/2ZmZv9ERET/3d3d/xEREf/MzMz/AAAA/6qqqv/MzMz/',
  },
  {
    name: 'grey 8-bit',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAAAAAB+XZokAAAAG0lEQVR4nGPYaXDl4UoGOesY+SkMy7JYV3MAAELVBngx4jXpAAAAAElFTkSuQmCC',
    rgba: 'ubm5/zAwMP/U1NT/4eHh/6mpqf8eHh7/Ozs7/1xcXP8fHx//lJSU/6ampv9qamr/BQUF/6urq/8ICAj/',
  },
  {
    name: 'grey 16-bit',
    colorType: 0,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADEAAAAAAuzUZnAAAAKklEQVR4nGOonFivvINx35xbwgziYV4H1YoaS9raGFh5X0S3X3JV14kGANTDDF9WKCX/AAAAAElFTkSuQmCC',
    rgba: 'eXl5/39/f/+4uLj/vr6+/9ra2v8XFxf/SkpK/yYmJv+BgYH/hoaG/wUFBf/o6Oj/h4eH/0VFRf8sLCz/',
  },
  {
    name: 'grey 8-bit with tRNS key',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAAAAAB+XZokAAAAAnRSTlMAFGxJGUUAAAAYSURBVHicY+ASAQIGES4uES4GLhE5OREACPABDzTL2aQAAAAASUVORK5CYII=',
    rgba: 'CgoK/xQUFAAUFBQAFBQUABQUFAAUFBQACgoK/woKCv8UFBQACgoK/woKCv8UFBQAHh4e/x4eHv8UFBQA',
  },
  {
    name: 'grey 16-bit with tRNS key',
    colorType: 0,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADEAAAAAAuzUZnAAAAAnRSTlMSNC/TSV4AAAAgSURBVHicYxAyAcL/q88KmTCsPguigPg/A0gExBH6DwDXog5zjIqaGQAAAABJRU5ErkJggg==',
    rgba: 'EhISABISEgASEhL/q6ur/xISEgCrq6v/q6ur/xISEgCrq6v/EhIS/xISEv+rq6v/q6ur/xISEgASEhL/',
  },
  {
    name: 'grey+alpha 8-bit',
    colorType: 4,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAQAAADxPw1zAAAALElEQVR4nAEhAN7/AL7UMpMBuGJVb6UAS9AmsaLZjSgV0wDzmJh91FMtm5tx/DkPgbfz4fUAAAAASUVORK5CYII=',
    rgba: 'vr6+1DIyMpMBAQG4YmJiVW9vb6VLS0vQJiYmsaKiotmNjY0oFRUV0/Pz85iYmJh91NTUUy0tLZubm5tx',
  },
  {
    name: 'RGB 8-bit',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAIAAADUVFKvAAAAO0lEQVR4nAEwAM//AFjexL5i2OwNfgM2ukShsAB56NoLHzfgXg4QjhvWkWcAAOWRXl2CwhVUMgOrTJI1EAcUMq5R3R4AAAAASUVORK5CYII=',
    rgba: 'WN7E/75i2P/sDX7/Aza6/0ShsP956Nr/Cx83/+BeDv8Qjhv/1pFn/wDlkf9eXYL/whVU/zIDq/9MkjX/',
  },
  {
    name: 'RGBA 8-bit',
    colorType: 6,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAYAAABbNsX4AAAASklEQVR4nAE/AMD/AKf+vbCBv29HyLNQiQX3oswjfM3dAIeUkVXv9+y3pZ4FPSQBVgPWBJrOAFuKmC5UDz7nGCa0RHbyo0gm/ZY1EloeiSJe2eMAAAAASUVORK5CYII=',
    rgba: 'p/69sIG/b0fIs1CJBfeizCN8zd2HlJFV7/fst6WeBT0kAVYD1gSazluKmC5UDz7nGCa0RHbyo0gm/ZY1',
  },
  {
    name: 'grey+alpha 16-bit',
    colorType: 4,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADEAQAAAChr9EwAAAASklEQVR4nAE/AMD/AM+k5COspPpDJj3+kfNruZn9ADBeAO35A4izTWex7PScA68lsYGjFk+eAFUV7UXmDWFM48WznMWaVx94nfUcF3EgF+8QHAYAAAAASUVORK5CYII=',
    rgba: 'z8/P5KysrPomJib+8/Pzuf39/TDt7e0Ds7OzZ+zs7Jyvr6+xo6OjT1VVVe3m5uZh4+Pjs8XFxVd4eHj1',
  },
  {
    name: 'RGB 16-bit',
    colorType: 2,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADEAIAAACExI7sAAAAaElEQVR4nAFdAKL/AEUQWC6XmASiaWhPzBUI6kATL/V9Crs+E3Fzgm5g/QAEGcon9soteZj9rwji/j+VatxatmzCPUTcboOlvAQAYY/UGKboIPJcdqLCQ8E7jK7vgBZEvmzc5JW+xT9iW14sIdvzV3gAAAAASUVORK5CYII=',
    rgba: 'RViX/wRpT/8V6hP/9Qo+/3GCYP8Eyvb/LZiv/+I/av9abD3/3IO8/2HUpv8gXKL/Qzuu/4BEbP/kvj//',
  },
  {
    name: 'RGBA 16-bit',
    colorType: 6,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADEAYAAAALphm7AAAAhklEQVR4nAF7AIT/ABiy5ENyguv5qOVI6GLchgrNBmFjTy0UIUC0yHDp+ZCv10Sqqic8AToAH9fj3w/0xqUMs96KELah9wEs1GDO7QiXC139BACS4Q1wqBvroKZ+uwAUukMnrVsZwWVa76CLuR+1yNsSraUCpjfYbi5INXBjMtrNPVUYxtRAp/Q7anEmCigAAAAASUVORK5CYII=',
    rgba: 'GORy66hIYobNYU8UQMjpkNeqJwEf4w/GDN4QoQHUzggL/QDhcBugfhRDrRll74sfyBKlptguNWPaPRjU',
  },
  {
    name: 'RGB 8-bit with tRNS key',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAIAAADUVFKvAAAABnRSTlMAAQACAAPJS6v1AAAAH0lEQVR4nGNgZGI5kWIERIxMzECSAZkD4gNZQCVwBAArNAnItClDwgAAAABJRU5ErkJggg==',
    rgba: 'AQIE/8hkMv/IZDL/AQIDAMhkMv/IZDL/yGQy/wECAwDIZDL/yGQy/wECAwABAgT/AQIE/wECBP8BAgT/',
  },
  {
    name: 'palette 1-bit with tRNS',
    colorType: 3,
    bitDepth: 1,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADAQMAAABh+Fe7AAAABlBMVEUZOEa3aFCozkb0AAAAAnRSTlMAgJsrThgAAAAOSURBVHicY7jBMIHhBwAG5gJhfMXIKgAAAABJRU5ErkJggg==',
    rgba: 't2hQgLdoUIAZOEYAt2hQgLdoUIC3aFCAGThGABk4RgC3aFCAGThGALdoUIC3aFCAt2hQgLdoUIC3aFCA',
  },
  {
    name: 'palette 2-bit with tRNS',
    colorType: 3,
    bitDepth: 2,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADAgMAAAAmWC1rAAAADFBMVEVhUwqz1/RqVpo+2Bu80Ph8AAAABHRSTlMAgP//7IBv5QAAABFJREFUeJxjmOTA0NLAYNQAAAvRAonLtEIbAAAAAElFTkSuQmCC',
    rgba: 'alaa/7PX9IBhUwoAalaa/7PX9IBqVpr/YVMKALPX9IBhUwoAalaa/2FTCgA+2Bv/YVMKAGpWmv9qVpr/',
  },
  {
    name: 'palette 4-bit with tRNS',
    colorType: 3,
    bitDepth: 4,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADBAMAAACpGNjLAAAAElBMVEX6h46d4uSl/3l27uYLnq9ASZAwsUShAAAABnRSTlMAgP//Cv9oMIIYAAAAFElEQVR4nGMQZjZgEAo2YDBSEgAABvUBQPUuzbMAAAAASUVORK5CYII=',
    rgba: 'neLkgHbu5v/6h44Adu7m/3bu5v+d4uSApf95/0BJkP927ub/du7m/3bu5v+l/3n/pf95/6X/ef+d4uSA',
  },
  {
    name: 'palette 8-bit with tRNS',
    colorType: 3,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAMAAABs6DXKAAAAElBMVEXayz77PE1lS41BlqCMQ1PcGPZqnZwzAAAABnRSTlMAgP//Cv9oMIIYAAAAF0lEQVR4nGNgZGZgZWFgYmBkBJLMQAYAASoAHdBUdG4AAAAASUVORK5CYII=',
    rgba: '+zxNgEGWoP/ayz4A3Bj2/4xDUwplS43/2ss+APs8TYD7PE2AjENTCmVLjf9BlqD/2ss+AGVLjf/ayz4A',
  },
  {
    name: 'palette 2-bit without tRNS',
    colorType: 3,
    bitDepth: 2,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADAgMAAAAmWC1rAAAACVBMVEUJCAf6AQIDBP9RyjU0AAAAEUlEQVR4nGPgZGCY5cDgxQAABOcBLqUy4dAAAAAASUVORK5CYII=',
    rgba: 'CQgH/wkIB/8DBP//+gEC/wkIB/8DBP//+gEC/wME//8DBP//+gEC//oBAv8JCAf/AwT//wME//8JCAf/',
  },
  {
    name: 'RGBA 8-bit filter 1',
    colorType: 6,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAYAAABGM/VAAAAAX0lEQVR4AQFUAKv/Ad8x1lrZcUNWPn+KvePA1N1W2muwAU6nyE0r8afFhjaTXrIKgPZJHcgKAV/bSe/g6vnEInRcR3/EXEjUKIbdAWFToufkwAIhwl/vIgmUJOskbWeFNy4qS8oKIRAAAAAASUVORK5CYII=',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 8-bit filter 2',
    colorType: 6,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAYAAABGM/VAAAAAX0lEQVR4AQFUAKv/At8x1lq4ohmw9iGjbdnhd0ovu+L6Am928vPB9lZiCa1fA9j3CxzLOmh2AhE0gaLGLdOhYmucii8leNy6MDavAgJ4WfgGTmJVpjn1MDAJvdOATp578+snwSol2bsAAAAASUVORK5CYII=',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 8-bit filter 3',
    colorType: 6,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAYAAABGM/VAAAAAX0lEQVR4AQFUAKv/A98x1lpJiq6DmtCXFV7RJhTDS6fVA9+PXSD29P+USHJ5McUBRgmKLJjAAziI5cnTDOYzwnB8aVd1apLHLN7GAzLmfnD1hzI7tEzyqZ1P8d/SXoOA104qnmXIksUAAAAASUVORK5CYII=',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 8-bit filter 4',
    colorType: 6,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAYAAABGM/VAAAAAX0lEQVR4AQFUAKv/BN8x1lrZcUNWPn+KvePA1N1W2muwBG928vMr8VZiR61fXtj3gBzLOmh2BBE0gaLG6vnEYmucR3/EXEi6KIbdBAJ4WfgGwAJVpl/vIq8JveskbZ6FOfwqN3vSbEsAAAAASUVORK5CYII=',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGB 8-bit filter 1',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAIAAADJUWIXAAAAS0lEQVR4AQFAAL//AfS28doJby3hePlWAD/GCwHK5O4sFAcJ8ZvhBj0dDOMBad1UD/km7Gcmk8Fe/+byAXBjq4mVUd3w8RUCDJnAftvtHu4CuYlXAAAAAElFTkSuQmCC',
    rgba: '9Lbx/86/YP/7oNj/9PbY/zO84//K5O7/9vj1///pkP/g783//fuw/2ndVP941nr/ZD2g//f+/v/25PD/cGOr//n4/P/W6O3/6+r5/4Sqd/8=',
  },
  {
    name: 'RGB 8-bit filter 2',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAIAAADJUWIXAAAAS0lEQVR4AQFAAL//AvS28c6/YPug2PT22DO84wLWLv0oOZUESbjs+fXKP80Cn/lmgt6FZVQQFw8x+elAAgeGV4EignKrTfTs+47Gh8bBI5JDsyOUAAAAAElFTkSuQmCC',
    rgba: '9Lbx/86/YP/7oNj/9PbY/zO84//K5O7/9vj1///pkP/g783//fuw/2ndVP941nr/ZD2g//f+/v/25PD/cGOr//n4/P/W6O3/6+r5/4Sqd/8=',
  },
  {
    name: 'RGB 8-bit filter 3',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAIAAADJUWIXAAAAS0lEQVR4AQFAAL//A/S28VRk6JRBqHembLlBdwNQiXYqJ04HHarnABl0JtgDBGvdyezWqV4bVWhI/OgZAzz1gYVcaihOHwX3BJTDg7CsHFT2w6wHAAAAAElFTkSuQmCC',
    rgba: '9Lbx/86/YP/7oNj/9PbY/zO84//K5O7/9vj1///pkP/g783//fuw/2ndVP941nr/ZD2g//f+/v/25PD/cGOr//n4/P/W6O3/6+r5/4Sqd/8=',
  },
  {
    name: 'RGB 8-bit filter 4',
    colorType: 2,
    bitDepth: 8,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAIAAADJUWIXAAAAS0lEQVR4AQFAAL//BPS28doJby3hePlWAD/GCwTWLv0sFJUEKpvl+T3KP9gEn/lmD94m7Gcmk8Ex+eYjBAeGV4GVUd2r8fTs+5nGh/PyIRTCPuaUAAAAAElFTkSuQmCC',
    rgba: '9Lbx/86/YP/7oNj/9PbY/zO84//K5O7/9vj1///pkP/g783//fuw/2ndVP941nr/ZD2g//f+/v/25PD/cGOr//n4/P/W6O3/6+r5/4Sqd/8=',
  },
  {
    name: 'grey 8-bit filter 1',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4AWP8ckv3pz3jKR3Oh7KMmfxvJv9nLOi8KzoTAIPqCq8zkO4KAAAAAElFTkSuQmCC',
    rgba: '9PT0/87Ozv/7+/v/9PT0/zMzM//Kysr/9vb2///////g4OD//f39/2lpaf94eHj/ZGRk//f39//29vb/cHBw//n5+f/W1tb/6+vr/4SEhP8=',
  },
  {
    name: 'grey 8-bit filter 2',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4AWP6cu73F2Omaxosb04xzW9KFf/JxN5Y9KUPAJisC7cCT1H+AAAAAElFTkSuQmCC',
    rgba: '9PT0/87Ozv/7+/v/9PT0/zMzM//Kysr/9vb2///////g4OD//f39/2lpaf94eHj/ZGRk//f39//29vb/cHBw//n5+f/W1tb/6+vr/4SEhP8=',
  },
  {
    name: 'grey 8-bit filter 3',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4AWP+EjKlfCdzgBb78xJmlpMrQ/8w27RqsE4BAHfTCT5Rd4CwAAAAAElFTkSuQmCC',
    rgba: '9PT0/87Ozv/7+/v/9PT0/zMzM//Kysr/9vb2///////g4OD//f39/2lpaf94eHj/ZGRk//f39//29vb/cHBw//n5+f/W1tb/6+vr/4SEhP8=',
  },
  {
    name: 'grey 8-bit filter 4',
    colorType: 0,
    bitDepth: 8,
    png: 'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4AWP5ckv3pz3LNR2Wp6dY5vO/mfyThb3x7peZAI/ZDBFgGp6OAAAAAElFTkSuQmCC',
    rgba: '9PT0/87Ozv/7+/v/9PT0/zMzM//Kysr/9vb2///////g4OD//f39/2lpaf94eHj/ZGRk//f39//29vb/cHBw//n5+f/W1tb/6+vr/4SEhP8=',
  },
  {
    name: 'RGBA 16-bit filter 1',
    colorType: 6,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEEAYAAAAWoykDAAAAr0lEQVR4AQGkAFv/Ad9GMdPWblp92Vlxl0MkVmU+sH+BisK9KuOKwHvU8N1OVhfawGtdsAcBTiOnS8gQTT0r+fG5p2jFtYY7Nk+TbF4rshkKY4D89glJaB2fyPUKZAFfa9sZSUTvE+Dd6iT5LMTaIhN0dlxuR3l/AMQdXFNIFNQEKMmG4t1KAWFjU2WiHOf+5KvAsQLbIYrCnl9Y710iawlNlAwkjetuJHdtuGfehQEFZkyB9cVhFgAAAABJRU5ErkJggg==',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 16-bit filter 2',
    colorType: 6,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEEAYAAAAWoykDAAAAr0lEQVR4AQGkAFv/At+OMd/W2FrUuFCirBnSsIr2PSEro2ptu9mP4fh3KEoOL3u7ruIt+uMCb2V2pPIP84fBnvbxVt5i/AkYrW1fZgPQ2BH3WQuiHOrLVzpvaDF2vwIR2zSOgUei7cZtLWXTr6GEYm1rspwbioAvxyVieHvciLrHMKA2gq9RAgKreJJZgvgFBrNOwGIHVUymnzlJ9YUwRzBECfm9FtNOgP1OM57we/5R91HjbsHyIAAAAABJRU5ErkJggg==',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 16-bit filter 3',
    colorType: 6,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEEAYAAAAWoykDAAAAr0lEQVR4AQGkAFv/A98nMUXWCVpnSX6Kp675g0iaptACl7kV9V690csmyRSNw1lLCqdd1XQD3yiPBV0zIIb2dPQg/yeUq0gvcnd58DGixYIB8EYVCWaKqywdmFbACAM4hYiW5RXJM9NgDF/mjjO5wiZwzXz6aTFXDXXwagSSiMfYLLneDMZ1AzJq5qR+jXB89bqHrTLmO0+0qUxk8qipzZ2hTx7x9d830tde14MZgPTaIVDcUlRL4AAAAABJRU5ErkJggg==',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
  {
    name: 'RGBA 16-bit filter 4',
    colorType: 6,
    bitDepth: 16,
    png:
      'iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEEAYAAAAWoykDAAAAr0lEQVR4AQGkAFv/BN+xMaDWX1rk2T1xwkPQVsY+Z3/Zika9VuOlwHrUG93dVkDawWupsKQEb912S/Lq8/ErKfF+Vsli5UdhrX9f1l6N2Jn304DQHBXLYjpkaON2fgQRoTQOgVyi0saZ6pD53sSEYpZrkJxYR71/08SHXEVILbqJKA+G7N2MBAJ4eDxZXfgjBlvAwAIQVemmz1+C72giI6+OCVi9a+s2JB5tuJ7UheWcOlVtdC6UeQAAAABJRU5ErkJggg==',
    rgba: '3zHWWriiGbD2IaNt2eF3Si+74vpOp8hNeZhvEv/OAnCx2IJm+vVKcF/bSe8/xUKzYTme+uD9+kK0JYAfYVOi50UTpAgHcpMqEAa3FTRzHpo=',
  },
];

/** pypng, 5x3 RGB 8-bit with interlace=True. */
const INTERLACED_RGB =
  'iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAIAAAGjU2I5AAAAP0lEQVR4nAE0AMv/AK5SiACFkHcAHLVcAK1NLQywKzgZ0ABG2CVK+qMANzdRPDORAD03jRz/RxkhoQGnQ/yc99URExK/KLU4AAAAAElFTkSuQmCC';
