/**
 * A small torch.save writer for tests: a state dict as PyTorch writes it (pickle protocol 2,
 * `_rebuild_tensor_v2` over typed storages), in the zip format (stored, or deflated as a re-zipped
 * file would be) or the legacy one. Tensors may be strided views and may share storages.
 */
import { type DType, DTYPE_SIZES } from '../../src/io/safetensors.ts';

export interface StorageSpec {
  dtype: 'F32' | 'F16' | 'BF16' | 'F64' | 'I64';
  bytes: Uint8Array;
}

export interface TensorSpec {
  storage: string;
  offset?: number;
  shape: number[];
  /** Default: row-major. */
  stride?: number[];
}

const STORAGE_CLASS: Record<StorageSpec['dtype'], string> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  F64: 'DoubleStorage',
  I64: 'LongStorage',
};

class PickleWriter {
  private parts: number[] = [];
  op(...bytes: number[]) {
    this.parts.push(...bytes);
  }
  text(s: string) {
    this.parts.push(...new TextEncoder().encode(s));
  }
  unicode(s: string) {
    const raw = new TextEncoder().encode(s);
    this.op(0x58, ...u32(raw.length), ...raw);
  }
  int(n: number) {
    if (n < 256) this.op(0x4b, n);
    else if (n < 65536) this.op(0x4d, n & 0xff, n >> 8);
    else this.op(0x4a, ...u32(n));
  }
  global(module: string, name: string) {
    this.op(0x63);
    this.text(`${module}\n${name}\n`);
  }
  tuple(items: number[]) {
    this.op(0x28);
    for (const i of items) this.int(i);
    this.op(0x74);
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function rowMajor(shape: number[]): number[] {
  const stride = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
  return stride;
}

/** The state dict's pickle; `legacy` writes the legacy persistent ids (with a view slot). */
export function statePickle(tensors: Record<string, TensorSpec>, storages: Record<string, StorageSpec>, legacy = false): Uint8Array {
  const w = new PickleWriter();
  w.op(0x80, 2, 0x7d, 0x28); // PROTO 2, EMPTY_DICT, MARK
  for (const [name, t] of Object.entries(tensors)) {
    const s = storages[t.storage];
    w.unicode(name);
    w.global('torch._utils', '_rebuild_tensor_v2');
    w.op(0x28); // MARK (the arguments)
    w.op(0x28); // MARK (the persistent id)
    w.unicode('storage');
    w.global('torch', STORAGE_CLASS[s.dtype]);
    w.unicode(t.storage);
    w.unicode('cpu');
    w.int(s.bytes.length / DTYPE_SIZES[s.dtype as DType]);
    if (legacy) w.op(0x4e); // no view
    w.op(0x74, 0x51); // TUPLE, BINPERSID
    w.int(t.offset ?? 0);
    w.tuple(t.shape);
    w.tuple(t.stride ?? rowMajor(t.shape));
    w.op(0x89); // requires_grad False
    w.global('collections', 'OrderedDict');
    w.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
    w.op(0x74, 0x52); // TUPLE, REDUCE
  }
  w.op(0x75, 0x2e); // SETITEMS, STOP
  return w.bytes();
}

/** Zip entries, stored or raw-deflated, with a central directory (no zip64: test files are small). */
export async function zip(entries: Record<string, Uint8Array>, deflate = false): Promise<Uint8Array> {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const stored = deflate ? await deflateRaw(data) : data;
    const nameBytes = new TextEncoder().encode(name);
    const local = new Uint8Array(30 + nameBytes.length + stored.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, deflate ? 8 : 0, true);
    lv.setUint32(18, stored.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    local.set(stored, 30 + nameBytes.length);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, deflate ? 8 : 0, true);
    cv.setUint32(20, stored.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const directorySize = centrals.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, directorySize, true);
  ev.setUint32(16, offset, true);
  return concat([...locals, ...centrals, end]);
}

async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** torch.save(state_dict) in the zip format, archive name 'archive'. */
export async function torchSaveZip(
  tensors: Record<string, TensorSpec>,
  storages: Record<string, StorageSpec>,
  options: { deflate?: boolean; pickle?: Uint8Array } = {},
): Promise<Uint8Array> {
  const entries: Record<string, Uint8Array> = { 'archive/data.pkl': options.pickle ?? statePickle(tensors, storages) };
  for (const [key, s] of Object.entries(storages)) entries[`archive/data/${key}`] = s.bytes;
  entries['archive/version'] = new TextEncoder().encode('3\n');
  return await zip(entries, options.deflate);
}

/** torch.save(state_dict, _use_new_zipfile_serialization=False): the legacy format. */
export function torchSaveLegacy(tensors: Record<string, TensorSpec>, storages: Record<string, StorageSpec>): Uint8Array {
  const magic = Uint8Array.of(0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e);
  const version = Uint8Array.of(0x80, 2, 0x4d, 0xe9, 0x03, 0x2e);
  const info = new PickleWriter();
  info.op(0x80, 2, 0x7d, 0x28);
  info.unicode('protocol_version');
  info.int(1001);
  info.unicode('little_endian');
  info.op(0x88);
  info.op(0x75, 0x2e);
  const keys = new PickleWriter();
  keys.op(0x80, 2, 0x5d, 0x28);
  for (const key of Object.keys(storages)) keys.unicode(key);
  keys.op(0x65, 0x2e);
  const records: Uint8Array[] = [];
  for (const s of Object.values(storages)) {
    const count = new Uint8Array(8);
    new DataView(count.buffer).setUint32(0, s.bytes.length / DTYPE_SIZES[s.dtype as DType], true);
    records.push(count, s.bytes);
  }
  return concat([magic, version, info.bytes(), statePickle(tensors, storages, true), keys.bytes(), ...records]);
}
