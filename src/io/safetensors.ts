/**
 * Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping tensor names to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the byte after the
 * header) plus an optional `__metadata__` string map, then the tensor data, little-endian.
 *
 * The reader treats the file as untrusted: every header value is checked before it is used,
 * nothing is read past the buffer, and no allocation is sized by an unchecked value. Anything
 * wrong is reported as a `SafetensorsError` that names the problem and the tensor.
 */
import { bfloat16ArrayToFloat32, float16ArrayToFloat32, float16ToFloat32 } from './half.ts';

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZES: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** A view into the file's bytes (no copy); it need not be aligned to the element size. */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** In the order the header lists them. */
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** The reference implementation's cap on the header size. */
const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

/**
 * Parses a safetensors file held in memory. The returned entries view `bytes`, so keep it
 * unchanged while they are in use. As in the reference reader, the tensors must tile the data
 * section exactly: taken in offset order, the first starts at 0, each starts where the one before
 * ends, and the last ends at the end of the file.
 */
export function parseSafetensors(input: Uint8Array, options: { maxHeaderBytes?: number } = {}): SafetensorsFile {
  // A plain view, so that entries are not Node Buffers with their surprising slice().
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (bytes.length < 8) {
    throw new SafetensorsError(`truncated file: ${bytes.length} bytes, too short for the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLengthHigh = view.getUint32(4, true);
  const headerLengthLow = view.getUint32(0, true);
  const headerLength = headerLengthHigh * 2 ** 32 + headerLengthLow; // may be inexact when huge; only compared
  if (headerLength > maxHeaderBytes) {
    throw new SafetensorsError(`header length ${headerLength} exceeds the limit of ${maxHeaderBytes} bytes`);
  }
  if (headerLength > bytes.length - 8) {
    throw new SafetensorsError(
      `header length ${headerLength} is larger than the file's ${bytes.length - 8} bytes after the length field`,
    );
  }
  const header = parseHeaderJson(bytes.subarray(8, 8 + headerLength));
  const dataStart = 8 + headerLength;
  const data = bytes.subarray(dataStart);

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const name of header.keys) {
    const value = header.object[name];
    if (name === METADATA_KEY) {
      metadata = checkMetadata(value);
      continue;
    }
    const { dtype, shape, begin, end } = checkEntry(name, value, data.length);
    spans.push({ name, begin, end });
    tensors.set(name, { name, dtype, shape, bytes: data.subarray(begin, end) });
  }
  checkTiling(spans, data.length);
  return { tensors, metadata };
}

function parseHeaderJson(headerBytes: Uint8Array): { object: Record<string, unknown>; keys: string[] } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  let object: unknown;
  try {
    object = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`header is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof object !== 'object' || object === null || Array.isArray(object)) {
    throw new SafetensorsError(`header is not a JSON object but ${describe(object)}`);
  }
  // JSON.parse keeps the last of repeated keys without a word; a file read two ways is a trap.
  const scan = scanObjectKeys(text);
  if (scan.duplicate) {
    const { key, parentKey } = scan.duplicate;
    if (parentKey === undefined) {
      throw new SafetensorsError(`duplicate ${key === METADATA_KEY ? 'key' : 'tensor name'} ${quoted(key)} in header`);
    }
    throw new SafetensorsError(`duplicate key ${quoted(key)} in header entry ${quoted(parentKey)}`);
  }
  return { object: object as Record<string, unknown>, keys: scan.topLevelKeys };
}

function checkMetadata(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SafetensorsError(`${METADATA_KEY} must be an object of strings, not ${describe(value)}`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new SafetensorsError(`${METADATA_KEY} value of ${quoted(key)} must be a string, not ${describe(item)}`);
    }
  }
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function checkEntry(name: string, value: unknown, dataLength: number) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SafetensorsError(`tensor ${quoted(name)}: entry must be an object, not ${describe(value)}`);
  }
  const entry = value as Record<string, unknown>;
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(entry, field)) throw new SafetensorsError(`tensor ${quoted(name)}: missing '${field}'`);
  }
  const dtype = entry.dtype;
  if (typeof dtype !== 'string') {
    throw new SafetensorsError(`tensor ${quoted(name)}: dtype must be a string, not ${describe(dtype)}`);
  }
  if (!Object.hasOwn(DTYPE_SIZES, dtype)) throw new SafetensorsError(`tensor ${quoted(name)}: unknown dtype ${quoted(dtype)}`);
  const shape = checkShape(name, entry.shape);
  const [begin, end] = checkOffsets(name, entry.data_offsets, dataLength);

  const elementSize = DTYPE_SIZES[dtype as DType];
  const expectedBytes = shapeByteSize(name, shape, elementSize);
  if (expectedBytes !== end - begin) {
    throw new SafetensorsError(
      `tensor ${quoted(name)}: ${end - begin} data bytes but ${dtype} ${formatShape(shape)} needs ${expectedBytes}`,
    );
  }
  return { dtype: dtype as DType, shape, begin, end };
}

function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new SafetensorsError(`tensor ${quoted(name)}: shape must be an array, not ${describe(shape)}`);
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(`tensor ${quoted(name)}: shape dimension ${describe(dim)} is not a non-negative integer`);
    }
  }
  return [...shape] as number[];
}

function checkOffsets(name: string, offsets: unknown, dataLength: number): [number, number] {
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw new SafetensorsError(`tensor ${quoted(name)}: data_offsets must be an array of two integers, not ${describe(offsets)}`);
  }
  for (const offset of offsets) {
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      throw new SafetensorsError(`tensor ${quoted(name)}: data offset ${describe(offset)} is not a non-negative integer`);
    }
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new SafetensorsError(`tensor ${quoted(name)}: data_offsets begin ${begin} > end ${end}`);
  if (end > dataLength) {
    throw new SafetensorsError(`tensor ${quoted(name)}: data_offsets end ${end} lies past the ${dataLength} data bytes of the file`);
  }
  return [begin, end];
}

/** Bytes of a tensor, refusing any product that is not exactly representable. */
function shapeByteSize(name: string, shape: number[], elementSize: number): number {
  if (shape.includes(0)) return 0;
  let size = elementSize;
  for (const dim of shape) {
    if (size > Number.MAX_SAFE_INTEGER / dim) {
      throw new SafetensorsError(`tensor ${quoted(name)}: shape ${formatShape(shape)} overflows the byte size`);
    }
    size *= dim;
  }
  return size;
}

/**
 * The reference reader's layout rule: sorted by (begin, end), each tensor begins where the one
 * before ended, and the last ends at the file's end, so no byte is hidden between, after or under
 * tensors. A zero-size tensor fits where its begin meets the previous end.
 */
function checkTiling(spans: { name: string; begin: number; end: number }[], dataLength: number): void {
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: { name: string; begin: number; end: number } | undefined;
  for (const span of sorted) {
    const where = `tensor ${quoted(span.name)} [${span.begin}, ${span.end})`;
    if (span.begin < position) {
      const { name, begin, end } = previous!;
      throw new SafetensorsError(`${where} overlaps tensor ${quoted(name)} [${begin}, ${end})`);
    }
    if (span.begin > position) {
      const after = previous ? `after tensor ${quoted(previous.name)} [${previous.begin}, ${previous.end})` : 'at the start of the data';
      throw new SafetensorsError(`${span.begin - position} unused data bytes ${after}, before ${where}`);
    }
    position = span.end;
    previous = span;
  }
  if (position !== dataLength) {
    const after = previous
      ? `after the last tensor ${quoted(previous.name)} [${previous.begin}, ${previous.end})`
      : 'in a file with no tensors';
    throw new SafetensorsError(`${dataLength - position} unused data bytes ${after}`);
  }
}

/** A name for a message: quoted, and cut short so a hostile header cannot flood the log. */
function quoted(text: string): string {
  return text.length > 80 ? `'${text.slice(0, 77)}...'` : `'${text}'`;
}

function formatShape(shape: number[]): string {
  return shape.length > 8 ? `[${shape.slice(0, 8).join(', ')}, ... (${shape.length} dims)]` : `[${shape.join(', ')}]`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 37)}...` : text}`;
}

// ---------------------------------------------------------------------------------------------
// Duplicate keys. The text has already passed JSON.parse, so a light scan suffices: a string
// directly inside an object and followed by ':' is a key.

interface KeyScan {
  topLevelKeys: string[];
  /** parentKey is the tensor name when the repeated key sits inside an entry. */
  duplicate?: { key: string; parentKey?: string };
}

function scanObjectKeys(text: string): KeyScan {
  const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a;
  const topLevelKeys: string[] = [];
  const frames: { keys: Set<string> | null; lastKey?: string }[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x7b /* { */) frames.push({ keys: new Set() });
    else if (ch === 0x5b /* [ */) frames.push({ keys: null });
    else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) frames.pop();
    else if (ch === QUOTE) {
      let end = i + 1;
      let escaped = false;
      while (text.charCodeAt(end) !== QUOTE) {
        if (text.charCodeAt(end) === BACKSLASH) {
          escaped = true;
          end++;
        }
        end++;
      }
      const token = text.slice(i, end + 1);
      i = end;
      const frame = frames[frames.length - 1];
      if (!frame?.keys) continue;
      let next = end + 1;
      while (isJsonWhitespace(text.charCodeAt(next))) next++;
      if (text.charCodeAt(next) !== COLON) continue;
      const key: string = escaped ? JSON.parse(token) : token.slice(1, -1);
      if (frame.keys.has(key)) {
        return { topLevelKeys, duplicate: { key, parentKey: frames.length > 1 ? frames[0].lastKey : undefined } };
      }
      frame.keys.add(key);
      frame.lastKey = key;
      if (frames.length === 1) topLevelKeys.push(key);
    }
  }
  return { topLevelKeys };
}

function isJsonWhitespace(ch: number): boolean {
  return ch === 0x20 || ch === 0x09 || ch === 0x0a || ch === 0x0d;
}

// ---------------------------------------------------------------------------------------------
// Conversions. The format is little-endian, as is every host WebGPU runs on; copying the bytes
// first gives typed arrays the alignment a view into the file may lack.

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type TypedArrayConstructor<T> = new (buffer: ArrayBuffer) => T;

function alignedCopy<T>(entry: TensorEntry, Type: TypedArrayConstructor<T>): T {
  if (!hostIsLittleEndian) throw new SafetensorsError(`tensor ${quoted(entry.name)}: big-endian hosts are not supported`);
  // new Uint8Array(view) copies; Buffer#slice would not (Node's Buffer makes slice a view).
  return new Type(new Uint8Array(entry.bytes).buffer);
}

/**
 * The tensor's values as a new Float32Array (never a view of the file). Wider or integer types
 * are rounded to the nearest float32; BOOL gives 0 and 1.
 */
export function toFloat32(entry: TensorEntry): Float32Array {
  switch (entry.dtype) {
    case 'F32':
      return alignedCopy(entry, Float32Array);
    case 'F16':
      return float16ArrayToFloat32(alignedCopy(entry, Uint16Array));
    case 'BF16':
      return bfloat16ArrayToFloat32(alignedCopy(entry, Uint16Array));
    case 'F8_E4M3':
      return mapBytes(entry.bytes, float8E4M3Table());
    case 'F8_E5M2':
      return mapBytes(entry.bytes, float8E5M2Table());
    case 'F64':
      return Float32Array.from(alignedCopy(entry, Float64Array));
    case 'I64':
      return Float32Array.from(alignedCopy(entry, BigInt64Array), Number);
    case 'U64':
      return Float32Array.from(alignedCopy(entry, BigUint64Array), Number);
    case 'I32':
      return Float32Array.from(alignedCopy(entry, Int32Array));
    case 'U32':
      return Float32Array.from(alignedCopy(entry, Uint32Array));
    case 'I16':
      return Float32Array.from(alignedCopy(entry, Int16Array));
    case 'U16':
      return Float32Array.from(alignedCopy(entry, Uint16Array));
    case 'I8':
      return Float32Array.from(new Int8Array(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.length));
    case 'U8':
      return Float32Array.from(entry.bytes);
    case 'BOOL':
      return Float32Array.from(entry.bytes, (b) => (b ? 1 : 0));
  }
}

/**
 * The values of an integer tensor as a new Int32Array. I64, U64 and U32 values are checked to
 * fit; float tensors are refused rather than truncated.
 */
export function toInt32(entry: TensorEntry): Int32Array {
  switch (entry.dtype) {
    case 'I32':
      return alignedCopy(entry, Int32Array);
    case 'I64':
      return checkedInt32(entry, alignedCopy(entry, BigInt64Array));
    case 'U64':
      return checkedInt32(entry, alignedCopy(entry, BigUint64Array));
    case 'U32':
      return checkedInt32(entry, alignedCopy(entry, Uint32Array));
    case 'I16':
      return Int32Array.from(alignedCopy(entry, Int16Array));
    case 'U16':
      return Int32Array.from(alignedCopy(entry, Uint16Array));
    case 'I8':
      return Int32Array.from(new Int8Array(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.length));
    case 'U8':
      return Int32Array.from(entry.bytes);
    case 'BOOL':
      return Int32Array.from(entry.bytes, (b) => (b ? 1 : 0));
    default:
      throw new SafetensorsError(`tensor ${quoted(entry.name)} has dtype ${entry.dtype}, not an integer type`);
  }
}

function checkedInt32(entry: TensorEntry, values: ArrayLike<bigint | number>): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = Number(values[i]);
    if (value < -(2 ** 31) || value > 2 ** 31 - 1) {
      throw new SafetensorsError(
        `tensor ${quoted(entry.name)}: ${entry.dtype} value ${values[i]} at index ${i} does not fit in int32`,
      );
    }
    out[i] = value;
  }
  return out;
}

function mapBytes(bytes: Uint8Array, table: Float32Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = table[bytes[i]];
  return out;
}

function float8E5M2Table(): Float32Array {
  // E5M2 is binary16 with the low byte dropped.
  return Float32Array.from({ length: 256 }, (_, b) => float16ToFloat32(b << 8));
}

function float8E4M3Table(): Float32Array {
  // The "fn" variant: bias 7, no infinities, only S.1111.111 is NaN.
  return Float32Array.from({ length: 256 }, (_, b) => {
    const sign = b & 0x80 ? -1 : 1;
    const exponent = (b >> 3) & 0xf;
    const mantissa = b & 7;
    if (exponent === 0xf && mantissa === 7) return NaN;
    if (exponent === 0) return sign * (mantissa / 8) * 2 ** -6;
    return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
  });
}

// ---------------------------------------------------------------------------------------------
// Writing.

export interface TensorToWrite {
  dtype: 'F32' | 'I32' | 'F16' | 'BF16';
  shape: number[];
  /** Float32Array for F32, Int32Array for I32, Uint16Array of the bit patterns for F16 (binary16) and BF16. */
  data: Float32Array | Int32Array | Uint16Array;
}

const ARRAY_TYPE_OF: Record<TensorToWrite['dtype'], { name: string }> = {
  F32: Float32Array,
  I32: Int32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
};

/**
 * Builds a safetensors file: compact JSON header padded with spaces to a multiple of 8 bytes
 * (as the reference writer does), then the tensors back to back in the order of their names
 * (by code point). `metadata`, when given, is stored as `__metadata__`.
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const encoder = new TextEncoder();
  const names = Object.keys(tensors).sort(compareCodePoints);
  const headerParts: string[] = [];
  if (metadata !== undefined) {
    const entries = Object.keys(metadata).sort(compareCodePoints).map((key) => {
      if (typeof metadata[key] !== 'string') throw new SafetensorsError(`metadata value of ${quoted(key)} must be a string`);
      return `${JSON.stringify(key)}:${JSON.stringify(metadata[key])}`;
    });
    headerParts.push(`"${METADATA_KEY}":{${entries.join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name];
    if (name === METADATA_KEY) throw new SafetensorsError(`'${METADATA_KEY}' cannot be a tensor name`);
    checkTensorToWrite(name, tensors[name]);
    const end = offset + data.byteLength;
    headerParts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const headerText = encoder.encode(`{${headerParts.join(',')}}`);
  const headerLength = Math.ceil(headerText.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(headerText, 8);
  out.fill(0x20, 8 + headerText.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const name of names) {
    const { data } = tensors[name];
    if (!hostIsLittleEndian) throw new SafetensorsError('big-endian hosts are not supported');
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
}

function checkTensorToWrite(name: string, { dtype, shape, data }: TensorToWrite): void {
  const arrayType = Object.hasOwn(ARRAY_TYPE_OF, dtype) ? ARRAY_TYPE_OF[dtype] : undefined;
  if (arrayType === undefined) throw new SafetensorsError(`tensor ${quoted(name)}: cannot write dtype ${quoted(dtype)}`);
  if (!(data instanceof (arrayType as typeof Float32Array))) {
    throw new SafetensorsError(`tensor ${quoted(name)}: ${dtype} data must be a ${arrayType.name}, not ${describe(data)}`);
  }
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(`tensor ${quoted(name)}: shape dimension ${dim} is not a non-negative integer`);
    }
    count *= dim;
  }
  if (count !== data.length) {
    throw new SafetensorsError(`tensor ${quoted(name)}: shape ${formatShape(shape)} holds ${count} values but data has ${data.length}`);
  }
}

function compareCodePoints(a: string, b: string): number {
  const left = a[Symbol.iterator]();
  const right = b[Symbol.iterator]();
  for (;;) {
    const l = left.next();
    const r = right.next();
    if (l.done || r.done) return (l.done ? 0 : 1) - (r.done ? 0 : 1);
    const difference = l.value.codePointAt(0)! - r.value.codePointAt(0)!;
    if (difference !== 0) return difference;
  }
}
