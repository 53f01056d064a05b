/**
 * Reading PyTorch's `torch.save` files without running them: the zip format (torch >= 1.6:
 * `NAME/data.pkl` plus one `NAME/data/KEY` entry per storage) and the legacy format (a magic
 * number, a protocol version and system info as three pickles, then the object's pickle, the
 * list of storage keys, and each storage as an int64 element count and its bytes).
 *
 * Like `torch.load(weights_only=True)`, the unpickler rebuilds only tensors (from f32, f16, bf16,
 * f64 and integer storages; contiguous or strided views) and plain containers; any other global
 * the pickle asks for is refused by name before anything happens. Sizes are bounded by the file:
 * every tensor must lie inside its storage, and a view may not hold more elements than its
 * storage (so nothing can be inflated past the file's size).
 */
import { type DType, DTYPE_SIZES, type SafetensorsFile, type TensorEntry } from './safetensors.ts';
import { describeValue, isGlobal, PickleError, type PickleGlobal, type PickleValue, printable, PyTuple, unpickle } from './pickle.ts';
import { looksLikeZip, readZip, storedEntryBytes, type ZipArchive, type ZipEntry, zipEntryBytes, ZipError } from './zip.ts';

export class TorchFileError extends Error {
  override name = 'TorchFileError';
}

/** A storage a pickle refers to; its bytes are attached once read. */
export interface TorchStorage {
  key: string;
  dtype: DType;
  /** Elements in the storage. */
  numel: number;
  bytes?: Uint8Array;
  /** Legacy views of another storage: their elements start this far into it. */
  viewOf?: { root: TorchStorage; offset: number };
}

/** A tensor of the pickle, not yet read out of its storage. */
export class TorchTensor {
  constructor(readonly storage: TorchStorage, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

export interface TorchFile {
  format: 'zip' | 'legacy';
  /** What was saved, with tensors as TorchTensor, dicts as Map, tuples as PyTuple. */
  value: PickleValue;
}

const STORAGE_TYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** torch.save's legacy magic number, the first pickle of a legacy file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** Most dimensions of a tensor. */
const MAX_DIMS = 16;

/** 'zip' or 'legacy' when the bytes start like a torch.save file. */
export function torchFormat(bytes: Uint8Array): 'zip' | 'legacy' | undefined {
  if (looksLikeZip(bytes)) return 'zip';
  // PROTO 2, then LONG1 of the magic number's 10 bytes.
  if (bytes.length >= 3 && bytes[0] === 0x80 && bytes[1] === 0x02 && bytes[2] === 0x8a) return 'legacy';
  return undefined;
}

/** Reads a torch.save file, decompressing deflated zip entries (torch itself stores them uncompressed). */
export async function readTorchFile(bytes: Uint8Array): Promise<TorchFile> {
  return await guard(async () => {
    if (torchFormat(bytes) !== 'zip') return parseLegacy(bytes);
    const { archive, prefix, pickleEntry } = openTorchZip(bytes);
    const { value, storages } = unpickleZip(await zipEntryBytes(archive, pickleEntry));
    for (const storage of storages.values()) {
      const entry = storageEntry(archive, prefix, storage);
      attach(storage, await zipEntryBytes(archive, entry));
    }
    return { format: 'zip', value };
  });
}

/**
 * Reads a torch.save file synchronously. torch writes its zip entries uncompressed, which this
 * reads as views of `bytes`; a file re-zipped with deflate needs `readTorchFile`.
 */
export function parseTorchFile(bytes: Uint8Array): TorchFile {
  return guardSync(() => {
    if (torchFormat(bytes) !== 'zip') return parseLegacy(bytes);
    const { archive, prefix, pickleEntry } = openTorchZip(bytes);
    const stored = (entry: ZipEntry) => {
      const data = storedEntryBytes(archive, entry);
      if (!data) {
        throw new TorchFileError(`entry '${entry.name}' is deflate-compressed: read the file with readTorchFile, which decompresses it`);
      }
      return data;
    };
    const { value, storages } = unpickleZip(stored(pickleEntry));
    for (const storage of storages.values()) attach(storage, stored(storageEntry(archive, prefix, storage)));
    return { format: 'zip', value };
  });
}

/** True when parseTorchFile cannot read the file because some storage is compressed. */
export function torchFileIsCompressed(bytes: Uint8Array): boolean {
  if (torchFormat(bytes) !== 'zip') return false;
  try {
    return [...readZip(bytes).entries.values()].some((e) => e.method !== 0);
  } catch {
    return false;
  }
}

/**
 * The tensors of a state dict (a dict of names to tensors, as `model.state_dict()` saves), as
 * safetensors entries: views of the file where the tensor is contiguous, copies where strided.
 */
export function stateDictEntries(value: PickleValue, what = 'the file'): SafetensorsFile {
  if (!(value instanceof Map)) throw new TorchFileError(`${what} holds ${describeValue(value)}, not a state dict (a dict of tensors)`);
  const tensors = new Map<string, TensorEntry>();
  for (const [name, tensor] of value) {
    if (typeof name !== 'string') throw new TorchFileError(`${what}: a state dict key is ${describeValue(name)}, not a string`);
    if (!(tensor instanceof TorchTensor)) {
      throw new TorchFileError(`${what}: '${printable(name)}' is ${describeValue(tensor)}, not a tensor`);
    }
    tensors.set(name, tensorEntry(name, tensor));
  }
  return { tensors, metadata: {} };
}

/** One tensor's values in row-major order. */
export function tensorEntry(name: string, tensor: TorchTensor): TensorEntry {
  const { storage, offset, shape, stride } = tensor;
  const bytes = storageBytes(storage);
  const size = DTYPE_SIZES[storage.dtype];
  const count = shape.reduce((a, b) => a * b, 1);
  if (count === 0) return { name, dtype: storage.dtype, shape, bytes: bytes.subarray(0, 0) };
  let contiguous = true;
  for (let d = shape.length - 1, expected = 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) contiguous = false;
    expected *= shape[d];
  }
  if (contiguous) return { name, dtype: storage.dtype, shape, bytes: bytes.subarray(offset * size, (offset + count) * size) };
  // A strided view (a transpose, a slice): gather its elements in row-major order.
  const out = new Uint8Array(count * size);
  const index = new Array(shape.length).fill(0);
  let source = offset;
  for (let i = 0; i < count; i++) {
    out.set(bytes.subarray(source * size, source * size + size), i * size);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        source += stride[d];
        break;
      }
      source -= (shape[d] - 1) * stride[d];
      index[d] = 0;
    }
  }
  return { name, dtype: storage.dtype, shape, bytes: out };
}

// ---------------------------------------------------------------------------------------------
// The two formats

function openTorchZip(bytes: Uint8Array) {
  const archive = readZip(bytes);
  const pickles = [...archive.entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) {
    throw new TorchFileError(
      pickles.length === 0 ? 'the zip has no NAME/data.pkl: it is not a torch.save file' : `the zip has ${pickles.length} data.pkl entries`,
    );
  }
  const prefix = pickles[0].slice(0, -'data.pkl'.length);
  const byteOrder = archive.entries.get(`${prefix}byteorder`);
  if (byteOrder) {
    const order = storedEntryBytes(archive, byteOrder);
    if (order && new TextDecoder().decode(order) !== 'little') throw new TorchFileError('the file was saved big-endian, which is not read');
  }
  return { archive, prefix, pickleEntry: archive.entries.get(pickles[0])! };
}

function unpickleZip(pickleBytes: Uint8Array) {
  const storages = new Map<string, TorchStorage>();
  const { value, end } = unpickle(pickleBytes, { resolveGlobal, persistentLoad: (pid) => zipStorage(pid, storages) });
  if (end !== pickleBytes.length) throw new TorchFileError(`data.pkl has ${pickleBytes.length - end} bytes after its end`);
  return { value, storages };
}

function storageEntry(archive: ZipArchive, prefix: string, storage: TorchStorage) {
  const entry = archive.entries.get(`${prefix}data/${storage.key}`);
  if (!entry) throw new TorchFileError(`storage '${printable(storage.key)}' has no entry ${prefix}data/${printable(storage.key)}`);
  return entry;
}

/** ('storage', storage_type, key, location, numel): one per storage, shared by its tensors. */
function zipStorage(pid: PickleValue, storages: Map<string, TorchStorage>): TorchStorage {
  const items = pid instanceof PyTuple ? pid.items : undefined;
  if (!items || items.length !== 5 || items[0] !== 'storage') {
    throw new TorchFileError(`persistent id ${describeValue(pid)} is not a storage`);
  }
  const [, type, key, , numel] = items;
  return sharedStorage(storages, storageDtype(type), key, numel);
}

function parseLegacy(bytes: Uint8Array): TorchFile {
  if (torchFormat(bytes) !== 'legacy') {
    throw new TorchFileError('not a torch.save file: it starts with neither a zip header nor the legacy pickle magic number');
  }
  const plain = { resolveGlobal };
  const magic = unpickle(bytes, plain);
  if (typeof magic.value !== 'bigint' || magic.value !== LEGACY_MAGIC) throw new TorchFileError('the legacy magic number is wrong');
  const version = unpickle(bytes, plain, magic.end);
  if (version.value !== 1001) throw new TorchFileError(`legacy protocol version ${describeValue(version.value)} is not read (1001 is)`);
  const info = unpickle(bytes, plain, version.end);
  if (!(info.value instanceof Map) || info.value.get('little_endian') !== true) {
    throw new TorchFileError('the file was saved on a big-endian machine or without its system info, which is not read');
  }
  const storages = new Map<string, TorchStorage>();
  const main = unpickle(bytes, { resolveGlobal, persistentLoad: (pid) => legacyStorage(pid, storages) }, info.end);
  const keys = unpickle(bytes, plain, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
    throw new TorchFileError('the legacy storage key list is not a list of strings');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = keys.end;
  for (const key of keys.value as string[]) {
    const storage = storages.get(key);
    if (!storage || storage.viewOf) throw new TorchFileError(`legacy storage '${printable(key)}' is listed but no tensor uses it`);
    if (at + 8 > bytes.length) throw new TorchFileError(`legacy storage '${printable(key)}': the file ends before its size`);
    const numel = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
    if (numel !== storage.numel) {
      throw new TorchFileError(`legacy storage '${printable(key)}' holds ${numel} elements but its tensors say ${storage.numel}`);
    }
    const length = numel * DTYPE_SIZES[storage.dtype];
    at += 8;
    if (length > bytes.length - at) throw new TorchFileError(`legacy storage '${printable(key)}' runs past the end of the file`);
    attach(storage, bytes.subarray(at, at + length));
    at += length;
  }
  for (const storage of storages.values()) {
    if (!storage.viewOf && !storage.bytes) throw new TorchFileError(`legacy storage '${printable(storage.key)}' is missing from the file`);
  }
  return { format: 'legacy', value: main.value };
}

/** ('storage', storage_type, root_key, location, numel, view_metadata). */
function legacyStorage(pid: PickleValue, storages: Map<string, TorchStorage>): TorchStorage {
  const items = pid instanceof PyTuple ? pid.items : undefined;
  if (items?.[0] === 'module') {
    throw new TorchFileError('the file holds the source code of a module, which is never run; save a state_dict instead');
  }
  if (!items || items.length !== 6 || items[0] !== 'storage') {
    throw new TorchFileError(`persistent id ${describeValue(pid)} is not a storage`);
  }
  const [, type, key, , numel, viewMetadata] = items;
  const root = sharedStorage(storages, storageDtype(type), key, numel);
  if (viewMetadata === null) return root;
  const view = viewMetadata instanceof PyTuple ? viewMetadata.items : undefined;
  if (!view || view.length !== 3 || typeof view[0] !== 'string') throw new TorchFileError('a legacy storage view is malformed');
  const [viewKey, offset, viewSize] = view;
  if (!isCount(offset) || !isCount(viewSize) || offset + viewSize > root.numel) {
    throw new TorchFileError(`legacy storage view '${printable(viewKey)}' does not lie inside storage '${printable(key)}'`);
  }
  return { key: viewKey, dtype: root.dtype, numel: viewSize, viewOf: { root, offset } };
}

function sharedStorage(storages: Map<string, TorchStorage>, dtype: DType, key: PickleValue, numel: PickleValue): TorchStorage {
  if (typeof key !== 'string' || !/^[\w.-]{1,64}$/.test(key)) {
    throw new TorchFileError(`storage key ${describeValue(key)} is not a plain name`);
  }
  if (!isCount(numel)) throw new TorchFileError(`storage '${key}': element count ${describeValue(numel)} is not a non-negative integer`);
  const known = storages.get(key);
  if (known) {
    if (known.dtype !== dtype || known.numel !== numel) throw new TorchFileError(`storage '${key}' is described two different ways`);
    return known;
  }
  const storage: TorchStorage = { key, dtype, numel };
  storages.set(key, storage);
  return storage;
}

function attach(storage: TorchStorage, bytes: Uint8Array): void {
  const expected = storage.numel * DTYPE_SIZES[storage.dtype];
  if (bytes.length !== expected) {
    throw new TorchFileError(
      `storage '${printable(storage.key)}' has ${bytes.length} bytes but ${storage.numel} ${storage.dtype} need ${expected}`,
    );
  }
  storage.bytes = bytes;
}

function storageBytes(storage: TorchStorage): Uint8Array {
  if (storage.viewOf) {
    const size = DTYPE_SIZES[storage.dtype];
    const root = storageBytes(storage.viewOf.root);
    return root.subarray(storage.viewOf.offset * size, (storage.viewOf.offset + storage.numel) * size);
  }
  if (!storage.bytes) throw new TorchFileError(`storage '${printable(storage.key)}' was not read`);
  return storage.bytes;
}

function storageDtype(type: PickleValue): DType {
  const dtype = isGlobal(type) ? (type as StorageTypeGlobal).dtype : undefined;
  if (!dtype) throw new TorchFileError(`storage type ${describeValue(type)} is not a tensor storage`);
  return dtype;
}

// ---------------------------------------------------------------------------------------------
// The globals a pickle may ask for: torch's rebuild functions, storage types, OrderedDict.

interface StorageTypeGlobal extends PickleGlobal {
  dtype: DType;
}

const isCount = (v: PickleValue): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function intTuple(value: PickleValue, what: string): number[] {
  if (!(value instanceof PyTuple) || value.items.length > MAX_DIMS || !value.items.every(isCount)) {
    throw new TorchFileError(`a tensor's ${what} is ${describeValue(value)}, not a tuple of at most ${MAX_DIMS} non-negative integers`);
  }
  return value.items as number[];
}

/** _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]). */
function rebuildTensor(args: PickleValue[]): TorchTensor {
  if (args.length < 4) throw new TorchFileError(`a tensor is rebuilt from ${args.length} arguments instead of at least 4`);
  const [storage, offset, sizeValue, strideValue] = args;
  if (storage === null || typeof storage !== 'object' || typeof storage.key !== 'string' || !('numel' in storage)) {
    throw new TorchFileError(`a tensor's storage is ${describeValue(storage)}`);
  }
  if (!isCount(offset)) throw new TorchFileError(`a tensor's storage offset is ${describeValue(offset)}`);
  const shape = intTuple(sizeValue, 'size');
  const stride = intTuple(strideValue, 'stride');
  if (stride.length !== shape.length) throw new TorchFileError(`a tensor of ${shape.length} dimensions has ${stride.length} strides`);
  const s = storage as TorchStorage;
  let count = 1;
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    count *= shape[d];
    if (shape[d] > 0) last += (shape[d] - 1) * stride[d];
  }
  if (count > 0) {
    if (!Number.isSafeInteger(count) || !Number.isSafeInteger(last) || last >= s.numel) {
      throw new TorchFileError(
        `a tensor [${shape.join(', ')}] at offset ${offset} with strides [${
          stride.join(', ')
        }] reaches past its storage of ${s.numel} elements`,
      );
    }
    if (count > s.numel) {
      throw new TorchFileError(
        `a tensor [${shape.join(', ')}] repeats the elements of its storage of ${s.numel}, which no state dict does`,
      );
    }
  }
  return new TorchTensor(s, offset, shape, stride);
}

const GLOBALS: Record<string, PickleGlobal> = {
  'collections.OrderedDict': {
    qualname: 'collections.OrderedDict',
    call: (args) => {
      const dict = new Map();
      if (args.length > 0 && Array.isArray(args[0])) {
        for (const pair of args[0]) {
          if (!(pair instanceof PyTuple) || pair.items.length !== 2) {
            throw new TorchFileError('OrderedDict built from something other than pairs');
          }
          dict.set(pair.items[0], pair.items[1]);
        }
      } else if (args.length > 0) throw new TorchFileError(`OrderedDict built from ${describeValue(args[0])}`);
      return dict;
    },
    // state_dict() sets attributes (_metadata) on the OrderedDict: not items, so not kept.
    build: (target) => target,
  },
  'torch._utils._rebuild_tensor_v2': { qualname: 'torch._utils._rebuild_tensor_v2', call: rebuildTensor },
  'torch._utils._rebuild_tensor': { qualname: 'torch._utils._rebuild_tensor', call: rebuildTensor },
  'torch._utils._rebuild_parameter': {
    qualname: 'torch._utils._rebuild_parameter',
    call: (args) => {
      if (!(args[0] instanceof TorchTensor)) throw new TorchFileError(`a parameter holds ${describeValue(args[0])}, not a tensor`);
      return args[0];
    },
  },
  'torch._utils._rebuild_parameter_with_state': {
    qualname: 'torch._utils._rebuild_parameter_with_state',
    call: (args) => {
      if (!(args[0] instanceof TorchTensor)) throw new TorchFileError(`a parameter holds ${describeValue(args[0])}, not a tensor`);
      return args[0];
    },
  },
};
for (const [name, dtype] of Object.entries(STORAGE_TYPES)) {
  GLOBALS[`torch.${name}`] = { qualname: `torch.${name}`, dtype } as StorageTypeGlobal;
}

function resolveGlobal(module: string, name: string): PickleGlobal {
  const qualname = `${module}.${name}`;
  const known = Object.hasOwn(GLOBALS, qualname) ? GLOBALS[qualname] : undefined;
  if (known) return known;
  throw new TorchFileError(
    `refused: the pickle asks for '${printable(qualname)}', which is not a tensor or a plain container ` +
      `(only those are read, as torch.load(weights_only=True) does; nothing from the file was run)`,
  );
}

// ---------------------------------------------------------------------------------------------

async function guard<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw asTorchError(error);
  }
}

function guardSync<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw asTorchError(error);
  }
}

/** Zip and pickle problems become TorchFileErrors, so callers handle one kind. */
function asTorchError(error: unknown): unknown {
  if (error instanceof ZipError || error instanceof PickleError) return new TorchFileError(error.message);
  return error;
}
