/**
 * PNG encoding and decoding without dependencies: zlib comes from the platform's
 * `CompressionStream('deflate')` / `DecompressionStream('deflate')` (Node 20, Deno, browsers).
 *
 * `encodePng` writes 8-bit RGBA. `decodePng` reads every non-interlaced PNG (grey, grey+alpha,
 * RGB, RGBA, palette with tRNS transparency, bit depths 1 to 16, 16-bit samples keep their high
 * byte) into 8-bit RGBA. The input is treated as untrusted: chunk bounds and CRCs are checked
 * and the inflated data is capped at the size the header promises. Problems are `PngError`s.
 */

export class PngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PngError';
  }
}

export interface DecodedPng {
  width: number;
  height: number;
  /** width × height × 4 bytes, row-major, straight (not premultiplied) alpha. */
  rgba: Uint8Array;
  /** As stored in the file: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colorType: number;
  bitDepth: number;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_CHUNK_LENGTH = 2 ** 31 - 1;
/** Bigger images are refused before anything is allocated for them (256 MiB of RGBA). */
const DEFAULT_MAX_PIXELS = 2 ** 26;

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

// ---------------------------------------------------------------------------------------------
// Encoding

/** An 8-bit RGBA PNG of `rgba` (width × height × 4 bytes, row-major). */
export async function encodePng(rgba: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  for (const [label, size] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_LENGTH) {
      throw new PngError(`cannot encode: ${label} ${size} is not an integer from 1 to 2^31-1`);
    }
  }
  if (rgba.length !== width * height * 4) {
    throw new PngError(`cannot encode: ${rgba.length} bytes given for ${width}x${height} RGBA, need ${width * height * 4}`);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8); // depth 8, RGBA, deflate, adaptive filtering, no interlace
  const idat = await deflate(filterRows(rgba, width * 4, height, 4));
  return concat([
    new Uint8Array(SIGNATURE),
    chunk('IHDR', header),
    chunk('IDAT', idat),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Each row with the filter that minimises the sum of absolute signed bytes (libpng's heuristic). */
function filterRows(pixels: Uint8Array, rowBytes: number, height: number, bpp: number): Uint8Array {
  const out = new Uint8Array(height * (rowBytes + 1));
  const candidate = new Uint8Array(rowBytes);
  const zeros = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const row = pixels.subarray(y * rowBytes, (y + 1) * rowBytes);
    const above = y > 0 ? pixels.subarray((y - 1) * rowBytes, y * rowBytes) : zeros;
    let bestCost = Infinity;
    const target = out.subarray(y * (rowBytes + 1), (y + 1) * (rowBytes + 1));
    for (let filter = 0; filter <= 4; filter++) {
      let cost = 0;
      for (let i = 0; i < rowBytes; i++) {
        const left = i >= bpp ? row[i - bpp] : 0;
        const upLeft = i >= bpp ? above[i - bpp] : 0;
        const value = (row[i] - predict(filter, left, above[i], upLeft)) & 0xff;
        candidate[i] = value;
        cost += value < 128 ? value : 256 - value;
      }
      if (cost < bestCost) {
        bestCost = cost;
        target[0] = filter;
        target.set(candidate, 1);
      }
    }
  }
  return out;
}

function predict(filter: number, left: number, up: number, upLeft: number): number {
  switch (filter) {
    case 1:
      return left;
    case 2:
      return up;
    case 3:
      return (left + up) >> 1;
    case 4:
      return paeth(left, up, upLeft);
    default:
      return 0;
  }
}

function paeth(left: number, up: number, upLeft: number): number {
  const estimate = left + up - upLeft;
  const toLeft = Math.abs(estimate - left);
  const toUp = Math.abs(estimate - up);
  const toUpLeft = Math.abs(estimate - upLeft);
  if (toLeft <= toUp && toLeft <= toUpLeft) return left;
  return toUp <= toUpLeft ? up : upLeft;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new CompressionStream('deflate');
  const writer = stream.writable.getWriter();
  writer.write(data as Uint8Array<ArrayBuffer>).catch(() => {}); // a failure surfaces on the readable side
  writer.close().catch(() => {});
  return new Uint8Array(await new Response(stream.readable).arrayBuffer());
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
}

/** Decodes a PNG to 8-bit RGBA. `maxPixels` (default 2^26) bounds what a header may ask for. */
export async function decodePng(input: Uint8Array, options: { maxPixels?: number } = {}): Promise<DecodedPng> {
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new PngError('not a PNG file: the 8-byte signature is missing');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: Header | undefined;
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined;
  const imageData: Uint8Array[] = [];
  let position = 8;
  for (;;) {
    if (position + 8 > bytes.length) throw new PngError(`truncated file: no IEND chunk (ends at byte ${bytes.length})`);
    const length = view.getUint32(position);
    const type = chunkType(bytes, position + 4);
    if (length > MAX_CHUNK_LENGTH) throw new PngError(`chunk '${type}' at byte ${position}: length ${length} exceeds 2^31-1`);
    const dataStart = position + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > bytes.length) {
      throw new PngError(`truncated chunk '${type}' at byte ${position}: needs ${length + 12} bytes, ${bytes.length - position} left`);
    }
    const expectedCrc = view.getUint32(dataEnd);
    if (crc32(bytes, position + 4, dataEnd) !== expectedCrc) throw new PngError(`bad CRC in chunk '${type}' at byte ${position}`);
    const data = bytes.subarray(dataStart, dataEnd);
    position = dataEnd + 4;

    if (header === undefined && type !== 'IHDR') throw new PngError(`first chunk is '${type}', not IHDR`);
    if (type === 'IHDR') {
      if (header !== undefined) throw new PngError('more than one IHDR chunk');
      header = parseHeader(data, options.maxPixels ?? DEFAULT_MAX_PIXELS);
    } else if (type === 'PLTE') {
      if (palette !== undefined) throw new PngError('more than one PLTE chunk');
      if (length % 3 !== 0 || length === 0 || length > 768) throw new PngError(`PLTE chunk of ${length} bytes is not 1 to 256 RGB entries`);
      palette = data;
    } else if (type === 'tRNS') {
      transparency = data;
    } else if (type === 'IDAT') {
      imageData.push(data);
    } else if (type === 'IEND') {
      break;
    } else if ((type.charCodeAt(0) & 0x20) === 0) {
      // An uppercase first letter marks a chunk a decoder must understand to draw the image.
      throw new PngError(`unsupported critical chunk '${type}'`);
    }
  }
  if (header === undefined) throw new PngError('no IHDR chunk');
  if (header.colorType === 3 && palette === undefined) throw new PngError('palette image without a PLTE chunk');
  if (imageData.length === 0) throw new PngError('no IDAT chunk');

  const channels = CHANNELS[header.colorType];
  const rowBytes = Math.ceil((header.width * channels * header.bitDepth) / 8);
  const raw = await inflate(imageData, header.height * (rowBytes + 1));
  unfilter(raw, rowBytes, header.height, Math.max(1, (channels * header.bitDepth) >> 3));
  const rgba = toRgba(raw, rowBytes, header, palette, transparency);
  return { width: header.width, height: header.height, rgba, colorType: header.colorType, bitDepth: header.bitDepth };
}

function chunkType(bytes: Uint8Array, at: number): string {
  let type = '';
  for (let i = 0; i < 4; i++) {
    const code = bytes[at + i];
    const isLetter = (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
    if (!isLetter) throw new PngError(`invalid chunk type at byte ${at - 4}: byte ${code} is not a letter`);
    type += String.fromCharCode(code);
  }
  return type;
}

function parseHeader(data: Uint8Array, maxPixels: number): Header {
  if (data.length !== 13) throw new PngError(`IHDR chunk has ${data.length} bytes, not 13`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const width = view.getUint32(0);
  const height = view.getUint32(4);
  const [bitDepth, colorType, compression, filterMethod, interlace] = data.subarray(8);
  if (width === 0 || height === 0 || width > MAX_CHUNK_LENGTH || height > MAX_CHUNK_LENGTH) {
    throw new PngError(`invalid image size ${width}x${height}`);
  }
  if (width * height > maxPixels) throw new PngError(`image of ${width}x${height} exceeds the limit of ${maxPixels} pixels`);
  if (!(colorType in ALLOWED_DEPTHS)) throw new PngError(`invalid colour type ${colorType}`);
  if (!ALLOWED_DEPTHS[colorType].includes(bitDepth)) {
    throw new PngError(`invalid bit depth ${bitDepth} for colour type ${colorType}`);
  }
  if (compression !== 0) throw new PngError(`unknown compression method ${compression}`);
  if (filterMethod !== 0) throw new PngError(`unknown filter method ${filterMethod}`);
  if (interlace === 1) throw new PngError('Adam7 interlaced PNGs are not supported; save the image without interlacing');
  if (interlace !== 0) throw new PngError(`unknown interlace method ${interlace}`);
  return { width, height, bitDepth, colorType };
}

/** Inflates the zlib stream of the IDAT chunks into exactly `expected` bytes. */
async function inflate(parts: Uint8Array[], expected: number): Promise<Uint8Array> {
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  (async () => {
    for (const part of parts) await writer.write(part as Uint8Array<ArrayBuffer>);
    await writer.close();
  })().catch(() => {}); // a failure surfaces on the readable side
  const out = new Uint8Array(expected);
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (length + value.length > expected) {
        reader.cancel().catch(() => {});
        throw new PngError(`image data inflates to more than the ${expected} bytes the header implies`);
      }
      out.set(value, length);
      length += value.length;
    }
  } catch (error) {
    if (error instanceof PngError) throw error;
    throw new PngError(`image data is not a valid zlib stream: ${(error as Error).message}`);
  }
  if (length < expected) throw new PngError(`image data too short: ${length} of ${expected} bytes`);
  // Not every runtime's DecompressionStream checks the trailer (Deno's accepts a stream cut
  // inside it), so compare the Adler-32 here; a stream that ends with junk fails this too.
  if (adler32(out) !== trailer(parts)) throw new PngError('image data checksum mismatch: the zlib stream is corrupt or cut short');
  return out;
}

function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length;) {
    // 5552 bytes is the most that cannot overflow b before the modulo.
    for (const end = Math.min(i + 5552, bytes.length); i < end; i++) {
      a += bytes[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b * 65536 + a) >>> 0;
}

/** The last four bytes of the IDAT data, big-endian: where zlib keeps its Adler-32. */
function trailer(parts: Uint8Array[]): number {
  let value = 0;
  let scale = 1;
  let taken = 0;
  for (let p = parts.length - 1; p >= 0 && taken < 4; p--) {
    for (let i = parts[p].length - 1; i >= 0 && taken < 4; i--, taken++) {
      value += parts[p][i] * scale;
      scale *= 256;
    }
  }
  return taken === 4 ? value : -1;
}

/** Undoes the per-row filters in place (each row keeps its leading filter-type byte). */
function unfilter(raw: Uint8Array, rowBytes: number, height: number, bpp: number): void {
  const stride = rowBytes + 1;
  for (let y = 0; y < height; y++) {
    const start = y * stride + 1;
    const filter = raw[start - 1];
    if (filter > 4) throw new PngError(`unknown filter type ${filter} in row ${y}`);
    if (filter === 0) continue;
    const above = start - stride;
    for (let i = 0; i < rowBytes; i++) {
      const left = i >= bpp ? raw[start + i - bpp] : 0;
      const up = y > 0 ? raw[above + i] : 0;
      const upLeft = y > 0 && i >= bpp ? raw[above + i - bpp] : 0;
      raw[start + i] = (raw[start + i] + predict(filter, left, up, upLeft)) & 0xff;
    }
  }
}

function toRgba(
  raw: Uint8Array,
  rowBytes: number,
  { width, height, bitDepth, colorType }: Header,
  palette: Uint8Array | undefined,
  transparency: Uint8Array | undefined,
): Uint8Array {
  const channels = CHANNELS[colorType];
  const rgba = new Uint8Array(width * height * 4);
  const maxSample = 2 ** bitDepth - 1;
  const toEightBits = (v: number) => (bitDepth === 16 ? v >> 8 : bitDepth === 8 ? v : Math.round((v * 255) / maxSample));
  const transparentKey = colorType === 0 || colorType === 2 ? keyColour(transparency, channels) : undefined;
  const sample = new Array<number>(channels);
  for (let y = 0; y < height; y++) {
    const row = y * (rowBytes + 1) + 1;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) sample[c] = readSample(raw, row, x * channels + c, bitDepth);
      const out = (y * width + x) * 4;
      if (colorType === 3) {
        const index = sample[0];
        if (3 * index >= palette!.length) {
          throw new PngError(`palette index ${index} at (${x}, ${y}) is outside the ${palette!.length / 3}-entry palette`);
        }
        rgba.set(palette!.subarray(3 * index, 3 * index + 3), out);
        rgba[out + 3] = transparency !== undefined && index < transparency.length ? transparency[index] : 255;
        continue;
      }
      const isGrey = channels <= 2;
      rgba[out] = toEightBits(sample[0]);
      rgba[out + 1] = toEightBits(sample[isGrey ? 0 : 1]);
      rgba[out + 2] = toEightBits(sample[isGrey ? 0 : 2]);
      const hasAlpha = channels === 2 || channels === 4;
      const keyed = transparentKey !== undefined && transparentKey.every((k, c) => k === sample[c]);
      rgba[out + 3] = hasAlpha ? toEightBits(sample[channels - 1]) : keyed ? 0 : 255;
    }
  }
  return rgba;
}

/** The colour a grey or RGB image's tRNS chunk makes transparent, in raw sample values. */
function keyColour(transparency: Uint8Array | undefined, channels: number): number[] | undefined {
  if (transparency === undefined) return undefined;
  if (transparency.length !== 2 * channels) throw new PngError(`tRNS chunk has ${transparency.length} bytes, not ${2 * channels}`);
  return Array.from({ length: channels }, (_, c) => (transparency[2 * c] << 8) | transparency[2 * c + 1]);
}

function readSample(raw: Uint8Array, row: number, index: number, bitDepth: number): number {
  if (bitDepth === 8) return raw[row + index];
  if (bitDepth === 16) return (raw[row + 2 * index] << 8) | raw[row + 2 * index + 1];
  const bit = index * bitDepth;
  return (raw[row + (bit >> 3)] >> (8 - bitDepth - (bit & 7))) & (2 ** bitDepth - 1);
}

// ---------------------------------------------------------------------------------------------
// Shared

let crcTable: Uint32Array | undefined;

function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
