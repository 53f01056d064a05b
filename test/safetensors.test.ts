import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import {
  type DType,
  DTYPE_SIZES,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  toFloat32,
  toInt32,
} from '../src/io/safetensors.ts';
import { float16ToFloat32, float32ToFloat16 } from '../src/io/half.ts';
import { mulberry32, pick } from './util/random.ts';

const s = suite('safetensors');

// Tests run with the repository root as the working directory (Node runs a bundle elsewhere).
const GOLDEN_UNET = '../shared/golden/emoji32_unet.safetensors';

/** A file from a header given as text or object and raw data bytes, bypassing the writer. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0), headerLength?: number): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp, options?: { maxHeaderBytes?: number }): void {
  try {
    parseSafetensors(bytes, options);
  } catch (error) {
    assert.instance(error, SafetensorsError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a SafetensorsError matching ${pattern}`);
}

const f32 = (shape: number[], begin: number) => ({
  dtype: 'F32',
  shape,
  data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
});

s('serialize then parse round-trips F32, I32 and F16 with metadata', () => {
  const weights = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
  const steps = Int32Array.from([999, -5, 0, 2 ** 31 - 1]);
  const halves = Uint16Array.from([0x3c00, 0xc000, 0x7bff]);
  const file = serializeSafetensors(
    {
      'b.weight': { dtype: 'F32', shape: [2, 3], data: weights },
      'a.t': { dtype: 'I32', shape: [4], data: steps },
      'c.half': { dtype: 'F16', shape: [3], data: halves },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.of(7) },
      empty: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
    },
    { format: 'pt', note: 'ünïcode "quoted"' },
  );
  const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
  assert.is(headerLength % 8, 0, 'header padded to a multiple of 8');
  assert.is(file[8], '{'.charCodeAt(0));
  const parsed = parseSafetensors(file);
  assert.equal(parsed.metadata, { format: 'pt', note: 'ünïcode "quoted"' });
  assert.equal([...parsed.tensors.keys()], ['a.t', 'b.weight', 'c.half', 'empty', 'scalar'], 'sorted by name');
  const entry = (name: string) => parsed.tensors.get(name)!;
  assert.equal(entry('b.weight').shape, [2, 3]);
  assert.equal([...toFloat32(entry('b.weight'))], [...weights]);
  assert.equal([...toInt32(entry('a.t'))], [...steps]);
  assert.equal([...toFloat32(entry('c.half'))], [1, -2, 65504]);
  assert.equal([...toFloat32(entry('scalar'))], [7]);
  assert.equal(entry('scalar').shape, []);
  assert.is(toFloat32(entry('empty')).length, 0);
  assert.is(entry('a.t').bytes.byteOffset, 8 + headerLength, 'data laid out in name order from the start');
});

s('the golden UNet file loads, and writing it back reproduces it byte for byte', () => {
  const bytes = readFileSync(GOLDEN_UNET);
  const file = parseSafetensors(bytes);
  const t = file.tensors.get('input.t')!;
  assert.is(t.dtype, 'I32');
  assert.equal([...toInt32(t)], [999, 500, 37, 0]);
  assert.equal(file.tensors.get('input.x')!.shape, [4, 3, 32, 32]);
  const x = toFloat32(file.tensors.get('input.x')!);
  assert.ok(x.every(Number.isFinite));
  console.log(`    ${file.tensors.size} tensors, input.x[0..2] = ${[...x.slice(0, 3)].map((v) => v.toFixed(4))}`);
  const again = serializeSafetensors(Object.fromEntries([...file.tensors].map(([name, entry]) => [name, {
    dtype: entry.dtype as 'F32' | 'I32',
    shape: entry.shape,
    data: entry.dtype === 'I32' ? toInt32(entry) : toFloat32(entry),
  }])));
  assert.ok(again.length === bytes.length && again.every((b, i) => b === bytes[i]), 'identical bytes');
});

s('entries are views into the file, also when the file is a Node Buffer', () => {
  const bytes = readFileSync(GOLDEN_UNET);
  const entry = parseSafetensors(bytes).tensors.get('output.eps')!;
  assert.is(entry.bytes.buffer, bytes.buffer);
  assert.is(entry.bytes.length, 4 * 3 * 32 * 32 * 4);
  assert.is(toFloat32(entry).length, 4 * 3 * 32 * 32, 'toFloat32 copies just the tensor, not the whole buffer');
});

s('rejects truncated files and impossible header lengths', () => {
  rejects(new Uint8Array(5), /truncated file: 5 bytes/);
  rejects(rawFile('{}', new Uint8Array(0), 50), /header length 50 is larger than the file's 2 bytes/);
  rejects(rawFile('{}', new Uint8Array(0), 2 ** 40), /header length 1099511627776 exceeds the limit of 100000000 bytes/);
  rejects(rawFile('{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', new Uint8Array(4)), /exceeds the limit of 16 bytes/, {
    maxHeaderBytes: 16,
  });
  const allOnes = rawFile('{}');
  new DataView(allOnes.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  rejects(allOnes, /header length 18446744073709552000 exceeds the limit/);
});

s('rejects headers that are not UTF-8 JSON objects', () => {
  const notUtf8 = rawFile('{"a":1}');
  notUtf8[10] = 0xff;
  rejects(notUtf8, /header is not valid UTF-8/);
  rejects(rawFile('{"a": '), /header is not valid JSON/);
  rejects(rawFile('[1, 2]'), /header is not a JSON object but an array/);
  rejects(rawFile('"text"'), /header is not a JSON object but string "text"/);
  rejects(rawFile('null'), /header is not a JSON object but null/);
  rejects(rawFile('\uFEFF{}'), /header is not valid JSON/);
});

s('rejects entries with missing or mistyped fields', () => {
  const data = new Uint8Array(16);
  rejects(rawFile({ w: { shape: [4], data_offsets: [0, 16] } }, data), /tensor 'w': missing 'dtype'/);
  rejects(rawFile({ w: { dtype: 'F32', data_offsets: [0, 16] } }, data), /tensor 'w': missing 'shape'/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [4] } }, data), /tensor 'w': missing 'data_offsets'/);
  rejects(rawFile({ w: [1, 2] }, data), /tensor 'w': entry must be an object, not an array/);
  rejects(rawFile({ w: { dtype: 4, shape: [4], data_offsets: [0, 16] } }, data), /tensor 'w': dtype must be a string, not number 4/);
  rejects(rawFile({ w: { dtype: 'F32', shape: '4', data_offsets: [0, 16] } }, data), /tensor 'w': shape must be an array/);
  rejects(
    rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8, 16] } }, data),
    /tensor 'w': data_offsets must be an array of two integers/,
  );
  rejects(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: ['0', 16] } }, data), /tensor 'w': data offset string "0"/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0.5, 16] } }, data), /tensor 'w': data offset number 0.5/);
  rejects(
    rawFile({ w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data),
    /tensor 'w': shape dimension number -4 is not a non-negative integer/,
  );
  rejects(rawFile({ w: { dtype: 'F32', shape: [2.5], data_offsets: [0, 16] } }, data), /shape dimension number 2.5/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [null], data_offsets: [0, 16] } }, data), /shape dimension null/);
  rejects(rawFile({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, data), /tensor 'w': unknown dtype 'F128'/);
  rejects(rawFile({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 16] } }, data), /unknown dtype 'toString'/);
});

s('rejects offsets outside the data, reversed, overlapping or of the wrong size', () => {
  const data = new Uint8Array(16);
  rejects(rawFile({ w: f32([5], 0) }, data), /tensor 'w': data_offsets end 20 lies past the 16 data bytes/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [12, 8] } }, data), /tensor 'w': data_offsets begin 12 > end 8/);
  rejects(rawFile({ a: f32([2], 0), b: f32([2], 4) }, data), /tensor 'b' \[4, 12\) overlaps tensor 'a' \[0, 8\)/);
  rejects(rawFile({ a: f32([4], 0), b: f32([1], 8) }, data), /tensor 'b' \[8, 12\) overlaps tensor 'a' \[0, 16\)/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data), /tensor 'w': 16 data bytes but F32 \[3\] needs 12/);
  rejects(rawFile({ w: { dtype: 'F16', shape: [4, 2], data_offsets: [0, 8] } }, data), /8 data bytes but F16 \[4, 2\] needs 16/);
  rejects(rawFile({ w: { dtype: 'U16', shape: [1], data_offsets: [0, 3] } }, data), /tensor 'w': 3 data bytes but U16 \[1\] needs 2/);
  rejects(rawFile({ w: { dtype: 'I64', shape: [0], data_offsets: [0, 4] } }, data), /tensor 'w': 4 data bytes but I64 \[0\] needs 0/);
  const huge = 2 ** 30;
  rejects(
    rawFile({ w: { dtype: 'F64', shape: [huge, huge, huge], data_offsets: [0, 0] } }, data),
    /tensor 'w': shape \[1073741824, 1073741824, 1073741824\] overflows/,
  );
  rejects(rawFile({ w: { dtype: 'F32', shape: [2 ** 51], data_offsets: [0, 0] } }, data), /overflows the byte size/);
  rejects(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 2 ** 60] } }, data), /data offset number 1152921504606847000/);
});

s('rejects data that the tensors do not tile exactly: gaps, bytes after the last, a first one past 0', () => {
  const entries = (...spans: [string, number, number][]) =>
    Object.fromEntries(spans.map(([name, begin, end]) => [name, { dtype: 'U8', shape: [end - begin], data_offsets: [begin, end] }]));
  const data = (n: number) => new Uint8Array(n);
  rejects(
    rawFile(entries(['a', 0, 8], ['b', 12, 16]), data(16)),
    /^4 unused data bytes after tensor 'a' \[0, 8\), before tensor 'b' \[12, 16\)$/,
  );
  rejects(rawFile(entries(['b', 12, 16], ['a', 0, 8]), data(16)), /4 unused data bytes after tensor 'a' \[0, 8\), before tensor 'b'/);
  rejects(rawFile(entries(['a', 4, 16]), data(16)), /^4 unused data bytes at the start of the data, before tensor 'a' \[4, 16\)$/);
  rejects(rawFile(entries(['a', 0, 8], ['b', 8, 12]), data(16)), /^4 unused data bytes after the last tensor 'b' \[8, 12\)$/);
  rejects(rawFile({}, data(3)), /^3 unused data bytes in a file with no tensors$/);
  rejects(rawFile({ __metadata__: { format: 'pt' } }, data(1)), /1 unused data bytes in a file with no tensors/);
  // Overlaps, also between equal spans and with a zero-size tensor inside another one.
  rejects(rawFile(entries(['a', 0, 8], ['b', 4, 16]), data(16)), /^tensor 'b' \[4, 16\) overlaps tensor 'a' \[0, 8\)$/);
  rejects(rawFile(entries(['a', 0, 16], ['b', 0, 16]), data(16)), /tensor 'b' \[0, 16\) overlaps tensor 'a' \[0, 16\)/);
  rejects(rawFile(entries(['a', 0, 16], ['e', 4, 4]), data(16)), /tensor 'e' \[4, 4\) overlaps tensor 'a' \[0, 16\)/);
  // A zero-size tensor at a gap does not close it.
  rejects(
    rawFile(entries(['a', 0, 8], ['e', 10, 10], ['b', 10, 16]), data(16)),
    /2 unused data bytes after tensor 'a' \[0, 8\), before tensor 'e'/,
  );
});

s('accepts zero-size tensors wherever the tiling meets, any header order, and trailing space padding', () => {
  const u8 = (begin: number, end: number, shape = [end - begin]) => ({ dtype: 'U8', shape, data_offsets: [begin, end] });
  const header = { b: u8(8, 16), z0: u8(0, 0, [0]), a: u8(0, 8), mid: u8(8, 8, [3, 0]), end: u8(16, 16, [0, 2]), f: { ...f32([0], 16) } };
  const file = parseSafetensors(rawFile(`${JSON.stringify(header)}       `, Uint8Array.from({ length: 16 }, (_, i) => i)));
  assert.equal([...file.tensors.keys()], ['b', 'z0', 'a', 'mid', 'end', 'f'], 'in header order');
  assert.equal([...file.tensors.get('b')!.bytes], [8, 9, 10, 11, 12, 13, 14, 15]);
  for (const name of ['z0', 'mid', 'end', 'f']) assert.is(file.tensors.get(name)!.bytes.length, 0, name);
  assert.equal(file.tensors.get('mid')!.shape, [3, 0]);
  // No tensors and no data: the reference writer's empty file.
  const empty = parseSafetensors(Uint8Array.of(8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32));
  assert.is(empty.tensors.size, 0);
});

s("the header limit is the reference reader's 100 MB, inclusive", () => {
  rejects(rawFile('{}', new Uint8Array(0), 100_000_001), /^header length 100000001 exceeds the limit of 100000000 bytes$/);
  rejects(rawFile('{}', new Uint8Array(0), 100_000_000), /header length 100000000 is larger than the file's 2 bytes/);
});

s('every safetensors file in ../shared and from serializeSafetensors loads', () => {
  const files = ['golden', 'models'].flatMap((dir) =>
    (readdirSync(`../shared/${dir}`, { recursive: true }) as string[]).filter((f) => f.endsWith('.safetensors')).map((f) => `${dir}/${f}`)
  ).sort();
  for (
    const required of [
      'golden/emoji32_unet.safetensors',
      'golden/sd/sd.safetensors',
      'golden/sd/tiny-sd/unet/diffusion_pytorch_model.safetensors',
      'golden/sd/tiny-sd/text_encoder/model.safetensors',
      'golden/sd/tiny-ldm/vqvae/diffusion_pytorch_model.safetensors',
      'golden/checkpoints/checkpoints.safetensors',
      'models/emoji32/diffusion_pytorch_model.safetensors',
    ]
  ) assert.ok(files.includes(required), `${required} is among the files found`);
  let tensors = 0;
  for (const path of files) {
    const bytes = new Uint8Array(readFileSync(`../shared/${path}`));
    const file = parseSafetensors(bytes);
    assert.ok(file.tensors.size > 0, `${path} has tensors`);
    checkLoaded(bytes, file);
    tensors += file.tensors.size;
  }
  const written = serializeSafetensors({
    w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) },
    h: { dtype: 'F16', shape: [3], data: new Uint16Array(3) },
    t: { dtype: 'I32', shape: [1], data: Int32Array.of(5) },
    empty: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
  }, { format: 'pt' });
  checkLoaded(written, parseSafetensors(written));
  assert.is(parseSafetensors(serializeSafetensors({})).tensors.size, 0);
  console.log(`    ${files.length} files, ${tensors} tensors`);
});

s('rejects duplicate keys that JSON.parse would silently merge', () => {
  const entry = JSON.stringify(f32([1], 0));
  const data = new Uint8Array(4);
  rejects(rawFile(`{"w":${entry},"w":${entry}}`, data), /duplicate tensor name 'w' in header/);
  rejects(rawFile(`{"w":${entry}, "\\u0077" :${entry}}`, data), /duplicate tensor name 'w'/);
  rejects(
    rawFile(`{"w":{"dtype":"F32","shape":[1],"dtype":"F16","data_offsets":[0,4]}}`, data),
    /duplicate key 'dtype' in header entry 'w'/,
  );
  rejects(rawFile(`{"__metadata__":{"k":"1","k":"2"},"w":${entry}}`, data), /duplicate key 'k' in header entry '__metadata__'/);
  rejects(rawFile(`{"__metadata__":{},"__metadata__":{}}`, data), /duplicate key '__metadata__' in header/);
  // Keys inside strings are not keys.
  const file = parseSafetensors(rawFile(`{"__metadata__":{"x":"\\"w\\":{","y":"{\\"w\\":1}"},"w":${entry}}`, data));
  assert.equal(file.metadata, { x: '"w":{', y: '{"w":1}' });
});

s('rejects a __metadata__ that is not a string-to-string map', () => {
  rejects(rawFile({ __metadata__: 'pt' }), /__metadata__ must be an object of strings, not string "pt"/);
  rejects(rawFile({ __metadata__: ['pt'] }), /__metadata__ must be an object of strings, not an array/);
  rejects(rawFile({ __metadata__: { format: 1 } }), /__metadata__ value of 'format' must be a string, not number 1/);
  rejects(rawFile({ __metadata__: { nested: {} } }), /value of 'nested' must be a string, not an object/);
});

s('a hostile name or value cannot flood the message', () => {
  const name = 'x'.repeat(10_000);
  try {
    parseSafetensors(rawFile({ [name]: { dtype: 'y'.repeat(10_000), shape: [], data_offsets: [0, 4] } }, new Uint8Array(4)));
    assert.unreachable();
  } catch (error) {
    assert.instance(error, SafetensorsError);
    assert.ok((error as Error).message.length < 300, (error as Error).message.slice(0, 100));
  }
});

s('a __proto__ tensor name is an ordinary name', () => {
  const file = parseSafetensors(rawFile(`{"__proto__":${JSON.stringify(f32([1], 0))}}`, new Uint8Array(4)));
  assert.equal([...file.tensors.keys()], ['__proto__']);
  assert.is(file.tensors.get('__proto__')!.dtype, 'F32');
});

/** Little-endian bytes of a typed array, for building files of any dtype. */
const bytesOf = (array: ArrayBufferView) => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);

function single(dtype: DType, shape: number[], data: Uint8Array) {
  return parseSafetensors(rawFile({ t: { dtype, shape, data_offsets: [0, data.length] } }, data)).tensors.get('t')!;
}

s('toFloat32 widens every dtype', () => {
  const halves = Uint16Array.of(0x0001, 0x3555, 0x7c00, 0xfc00, 0x8000, 0x7e00);
  const h = toFloat32(single('F16', [6], bytesOf(halves)));
  assert.equal([...h.slice(0, 5)], [2 ** -24, 0.333251953125, Infinity, -Infinity, -0]);
  assert.ok(Number.isNaN(h[5]));
  assert.equal([...toFloat32(single('BF16', [3], bytesOf(Uint16Array.of(0x3f80, 0xc049, 0x0000))))], [1, -3.140625, 0]);
  assert.equal([...toFloat32(single('F64', [2], bytesOf(Float64Array.of(0.1, -1e300))))], [Math.fround(0.1), -Infinity]);
  assert.equal([...toFloat32(single('I64', [2], bytesOf(BigInt64Array.of(-3n, 2n ** 40n))))], [-3, 2 ** 40]);
  assert.equal([...toFloat32(single('U64', [1], bytesOf(BigUint64Array.of(2n ** 63n))))], [2 ** 63]);
  assert.equal([...toFloat32(single('I32', [2], bytesOf(Int32Array.of(-7, 123456))))], [-7, 123456]);
  assert.equal([...toFloat32(single('U32', [1], bytesOf(Uint32Array.of(4e9))))], [Math.fround(4e9)]);
  assert.equal([...toFloat32(single('I16', [2], bytesOf(Int16Array.of(-300, 300))))], [-300, 300]);
  assert.equal([...toFloat32(single('U16', [1], bytesOf(Uint16Array.of(60000))))], [60000]);
  assert.equal([...toFloat32(single('I8', [2], bytesOf(Int8Array.of(-128, 127))))], [-128, 127]);
  assert.equal([...toFloat32(single('U8', [2], Uint8Array.of(0, 255)))], [0, 255]);
  assert.equal([...toFloat32(single('BOOL', [3], Uint8Array.of(0, 1, 2)))], [0, 1, 1]);
  // E4M3: 0x7e = 448 (largest), 0x08 = 2^-6 (smallest normal), 0x01 = 2^-9; 0x7f is NaN.
  const e4m3 = toFloat32(single('F8_E4M3', [4], Uint8Array.of(0x7e, 0x08, 0x81, 0x7f)));
  assert.equal([...e4m3.slice(0, 3)], [448, 2 ** -6, -(2 ** -9)]);
  assert.ok(Number.isNaN(e4m3[3]));
  assert.equal([...toFloat32(single('F8_E5M2', [3], Uint8Array.of(0x3c, 0x7b, 0x7c)))], [1, 57344, Infinity]);
});

s('toFloat32 copies an F32 tensor that is not 4-byte aligned in the file', () => {
  const file = parseSafetensors(serializeSafetensors({
    a: { dtype: 'F16', shape: [1], data: Uint16Array.of(0x3c00) },
    b: { dtype: 'F32', shape: [3], data: Float32Array.of(1.5, -2.25, 1e-30) },
  }));
  const b = file.tensors.get('b')!;
  assert.is(b.bytes.byteOffset % 4, 2, 'the F32 data starts 2 bytes after a 4-byte boundary');
  assert.equal([...toFloat32(b)], [1.5, -2.25, Math.fround(1e-30)]);
});

s('toInt32 checks that 64-bit values fit and refuses floats', () => {
  assert.equal([...toInt32(single('I64', [3], bytesOf(BigInt64Array.of(-(2n ** 31n), 0n, 2n ** 31n - 1n))))], [-(2 ** 31), 0, 2 ** 31 - 1]);
  assert.throws(
    () => toInt32(single('I64', [2], bytesOf(BigInt64Array.of(1n, 2n ** 31n)))),
    /tensor 't': I64 value 2147483648 at index 1 does not fit in int32/,
  );
  assert.throws(() => toInt32(single('U32', [1], bytesOf(Uint32Array.of(2 ** 31)))), /does not fit in int32/);
  assert.equal([...toInt32(single('U8', [2], Uint8Array.of(3, 250)))], [3, 250]);
  assert.throws(() => toInt32(single('F32', [1], new Uint8Array(4))), /tensor 't' has dtype F32, not an integer type/);
});

s('serializeSafetensors refuses what it cannot write faithfully', () => {
  assert.throws(
    () => serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(4) } }),
    /tensor 'w': shape \[3\] holds 3 values but data has 4/,
  );
  assert.throws(
    () => serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Int32Array(2) } }),
    /tensor 'w': F32 data must be a Float32Array, not a Int32Array/,
  );
  assert.throws(
    () => serializeSafetensors({ w: { dtype: 'F64' as 'F32', shape: [1], data: new Float32Array(1) } }),
    /cannot write dtype 'F64'/,
  );
  assert.throws(
    () => serializeSafetensors({ __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }),
    /'__metadata__' cannot be a tensor name/,
  );
  assert.throws(() => serializeSafetensors({ w: { dtype: 'I32', shape: [-1], data: new Int32Array(0) } }), /shape dimension -1/);
});

s('names are laid out in code point order, integer-like names included', () => {
  const data = (v: number) => ({ dtype: 'F32' as const, shape: [1], data: Float32Array.of(v) });
  const file = parseSafetensors(serializeSafetensors({ b: data(1), '10': data(2), '9': data(3), '\u{1F600}': data(4), '\uFF01': data(5) }));
  assert.equal([...file.tensors.keys()], ['10', '9', 'b', '\uFF01', '\u{1F600}']);
  assert.equal([...file.tensors.values()].map((e) => toFloat32(e)[0]), [2, 3, 1, 5, 4]);
});

s('float32ToFloat16 inverts float16ToFloat32 and rounds ties to even', () => {
  for (let h = 0; h < 65536; h++) {
    const value = float16ToFloat32(h);
    if (Number.isNaN(value)) assert.ok(Number.isNaN(float16ToFloat32(float32ToFloat16(value))));
    else if (float32ToFloat16(value) !== h) {
      assert.unreachable(`0x${h.toString(16)} → ${value} → 0x${float32ToFloat16(value).toString(16)}`);
    }
  }
  assert.is(float32ToFloat16(1 + 2 ** -11), 0x3c00, 'tie goes down to the even mantissa');
  assert.is(float32ToFloat16(1 + 3 * 2 ** -11), 0x3c02, 'tie goes up to the even mantissa');
  assert.is(float32ToFloat16(65519), 0x7bff);
  assert.is(float32ToFloat16(65520), 0x7c00, 'past the largest half rounds to infinity');
  assert.is(float32ToFloat16(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
  assert.is(float32ToFloat16(3 * 2 ** -26), 0x0001);
  assert.is(float32ToFloat16(2 ** -14 - 2 ** -25), 0x0400, 'rounding up out of the subnormals');
  assert.is(float32ToFloat16(-0), 0x8000);
});

// ---------------------------------------------------------------------------------------------
// Fuzzing: every mutation of a valid file must end in a SafetensorsError or a load whose
// tensors all lie inside the file and match their dtype and shape.

function fuzzBase(): Uint8Array {
  return serializeSafetensors({
    'down.0.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from({ length: 6 }, (_, i) => i) },
    'down.0.bias': { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0x4000, 0x4200) },
    steps: { dtype: 'I32', shape: [4], data: Int32Array.of(999, 500, 37, 0) },
    empty: { dtype: 'F32', shape: [0, 2], data: new Float32Array(0) },
  }, { format: 'pt' });
}

type Mutation = (file: Uint8Array, random: () => number) => Uint8Array;

const headerLengthOf = (file: Uint8Array) => Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));

const ODD_NUMBERS = [-1, 0, 1, 3, 4, 7, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e300, 0.5, -0.0];
const ODD_VALUES: unknown[] = [null, true, 'x', [], {}, [1, 2], '4', ...ODD_NUMBERS];

function withHeader(file: Uint8Array, text: string): Uint8Array {
  return rawFile(text, file.subarray(8 + headerLengthOf(file)));
}

const MUTATIONS: Record<string, Mutation> = {
  'byte flip': (file, random) => {
    const out = file.slice();
    const inHeader = random() < 0.7;
    const span = inHeader ? Math.min(out.length, 8 + headerLengthOf(file)) : out.length;
    out[Math.floor(random() * span)] ^= 1 + Math.floor(random() * 255);
    return out;
  },
  truncation: (file, random) => file.slice(0, Math.floor(random() * file.length)),
  'header length': (file, random) => {
    const out = file.slice();
    const length = headerLengthOf(file);
    const value = pick(
      random,
      [length + 1, length - 1, length + 8, length - 8, 0, out.length - 8, out.length - 7, Math.floor(random() * 2 ** 32)].map(BigInt)
        .concat([2n ** 53n + 1n, 2n ** 64n - 1n]),
    );
    new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    return out;
  },
  'header edit': (file, random) => {
    const text = new TextDecoder().decode(file.subarray(8, 8 + headerLengthOf(file)));
    const header = JSON.parse(text);
    const names = Object.keys(header);
    const name = pick(random, names);
    const entry = header[name];
    const edit = pick(random, ['offset', 'shape', 'dtype', 'drop field', 'replace entry', 'add overlapping', 'odd field', 'swap offsets']);
    if (name === '__metadata__') header[name] = pick(random, [{ format: pick(random, ODD_VALUES) }, pick(random, ODD_VALUES)]);
    else if (edit === 'offset') entry.data_offsets[Math.floor(random() * 2)] += pick(random, [-8, -4, -2, -1, 1, 2, 4, 8, 1000]);
    else if (edit === 'shape') {
      const shape = entry.shape as unknown[];
      const op = pick(random, ['set', 'push', 'pop']);
      if (op === 'push') shape.push(pick(random, [1, 2, 0, 3]));
      else if (op === 'pop') shape.pop();
      else shape[Math.floor(random() * Math.max(1, shape.length))] = pick(random, ODD_VALUES);
    } else if (edit === 'dtype') entry.dtype = pick(random, [...Object.keys(DTYPE_SIZES), 'F128', 'f32', 7, null]);
    else if (edit === 'drop field') delete entry[pick(random, ['dtype', 'shape', 'data_offsets'])];
    else if (edit === 'replace entry') header[name] = pick(random, ODD_VALUES);
    else if (edit === 'add overlapping') {
      const begin = Math.floor(random() * 40);
      header[`extra${begin}`] = {
        dtype: pick(random, ['F32', 'U8', 'I64']),
        shape: [pick(random, [0, 1, 2, 4])],
        data_offsets: [begin, begin + pick(random, [0, 1, 4, 8, 16])],
      };
    } else if (edit === 'odd field') entry[pick(random, ['dtype', 'shape', 'data_offsets'])] = pick(random, ODD_VALUES);
    else if (edit === 'swap offsets') entry.data_offsets.reverse();
    return withHeader(file, JSON.stringify(header));
  },
  // Moves the tensors' bytes: a new order tiled back to back (valid), or with a gap or extra bytes
  // inserted, or one tensor's span shifted onto its neighbour.
  'data layout': (file, random) => {
    const headerLength = headerLengthOf(file);
    const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength)));
    const data = file.subarray(8 + headerLength);
    const names = Object.keys(header).filter((name) => name !== '__metadata__');
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [names[i], names[j]] = [names[j], names[i]];
    }
    const edit = pick(random, ['retile', 'gap', 'shift']);
    const gapAt = edit === 'gap' ? Math.floor(random() * (names.length + 1)) : -1;
    const gap = 1 + Math.floor(random() * 8);
    const pieces: Uint8Array[] = [];
    let offset = 0;
    names.forEach((name, i) => {
      const [begin, end] = header[name].data_offsets;
      if (i === gapAt) pieces.push(new Uint8Array(gap));
      offset += i === gapAt ? gap : 0;
      pieces.push(data.subarray(begin, end));
      header[name].data_offsets = [offset, offset + end - begin];
      offset += end - begin;
    });
    if (gapAt === names.length) pieces.push(new Uint8Array(gap));
    if (edit === 'shift') {
      const shift = pick(random, [-4, -1, 2]);
      const entry = header[pick(random, names)];
      entry.data_offsets = (entry.data_offsets as number[]).map((o) => o + shift);
    }
    const newData = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
    let at = 0;
    for (const piece of pieces) {
      newData.set(piece, at);
      at += piece.length;
    }
    return rawFile(JSON.stringify(header), newData);
  },
  'duplicate key': (file, random) => {
    const text = new TextDecoder().decode(file.subarray(8, 8 + headerLengthOf(file))).trimEnd();
    const keys = [...text.matchAll(/"([^"\\]+)":/g)];
    const key = pick(random, keys);
    // Repeat a key right after its own value's opening or at the end of its object.
    const insertAt = text.indexOf(key[0]) + key[0].length;
    const copied = pick(random, ['"dtype":"F32",', '"shape":[1],', '"data_offsets":[0,4],', '"format":"x",']);
    if (random() < 0.5 && text[insertAt] === '{') {
      return withHeader(file, `${text.slice(0, insertAt + 1)}${copied}${text.slice(insertAt + 1)}`);
    }
    return withHeader(file, `${text.slice(0, -1)},${key[0]}${JSON.stringify(pick(random, ODD_VALUES))}}`);
  },
};

function checkLoaded(file: Uint8Array, loaded: ReturnType<typeof parseSafetensors>): void {
  const dataStart = 8 + headerLengthOf(file);
  const spans: [number, number][] = [];
  for (const entry of loaded.tensors.values()) {
    const { bytes } = entry;
    assert.ok(bytes.buffer === file.buffer, 'a view of the file');
    assert.ok(bytes.byteOffset >= file.byteOffset + dataStart, 'after the header');
    assert.ok(bytes.byteOffset + bytes.byteLength <= file.byteOffset + file.byteLength, 'inside the file');
    const count = entry.shape.reduce((a, b) => a * b, 1);
    assert.is(bytes.byteLength, count * DTYPE_SIZES[entry.dtype], `${entry.name} bytes match dtype and shape`);
    assert.is(toFloat32(entry).length, count);
    if (bytes.byteLength > 0) spans.push([bytes.byteOffset, bytes.byteOffset + bytes.byteLength]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let position = file.byteOffset + dataStart;
  for (const [begin, end] of spans) {
    assert.is(begin, position, 'each tensor starts where the one before ends');
    position = end;
  }
  assert.is(position, file.byteOffset + file.byteLength, 'the last tensor ends at the end of the file');
  for (const value of Object.values(loaded.metadata)) assert.type(value, 'string');
}

/** The message without its particulars (names, numbers, JSON.parse's excerpt), for counting. */
function outcomeKind(message: string): string {
  return message
    .replace(/(not valid JSON).*/s, '$1')
    .replace(/'[^']*'|"[^"]*"|\[[^\])]*[\])]|-?\d[\d.e+]*/g, '…')
    .slice(0, 80);
}

s('fuzz: every mutation is rejected cleanly or loads consistently', () => {
  const seed = Number((globalThis as { process?: { env?: Record<string, string> } }).process?.env?.SAFETENSORS_FUZZ_SEED ?? 20240611);
  const random = mulberry32(seed);
  const base = fuzzBase();
  const outcomes: Record<string, number> = {};
  const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
  const kinds = Object.keys(MUTATIONS);
  for (let i = 0; i < 4000; i++) {
    let file = base;
    const applied: string[] = [];
    for (let m = 0, rounds = 1 + Math.floor(random() * 3); m < rounds; m++) {
      const kind = pick(random, kinds);
      applied.push(kind);
      try {
        file = MUTATIONS[kind](file, random);
      } catch {
        break; // an earlier mutation broke the header's JSON; fuzz what we have
      }
    }
    let loaded: ReturnType<typeof parseSafetensors>;
    try {
      loaded = parseSafetensors(file);
    } catch (error) {
      if (!(error instanceof SafetensorsError)) {
        throw new Error(`seed ${seed}, case ${i} (${applied.join(' + ')}): ${(error as Error).stack}`);
      }
      count(`rejected: ${outcomeKind(error.message)}`);
      continue;
    }
    checkLoaded(file, loaded);
    count(file === base ? 'loaded unchanged' : 'loaded after mutation');
  }
  const summary = Object.entries(outcomes).sort((a, b) => b[1] - a[1]);
  console.log(`    fuzz seed ${seed} (set SAFETENSORS_FUZZ_SEED to vary), 4000 cases:`);
  for (const [outcome, n] of summary) console.log(`      ${String(n).padStart(5)}  ${outcome}`);
  assert.ok((outcomes['loaded after mutation'] ?? 0) > 50, 'some mutations still load');
  assert.ok(summary.filter(([k]) => k.startsWith('rejected')).length > 15, 'many distinct rejections');
});

s.run();
