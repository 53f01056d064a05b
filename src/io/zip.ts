/**
 * A small reader of zip archives held in memory, enough for PyTorch's `torch.save` files: the
 * central directory (zip64 too), stored entries as views of the archive, and deflated ones through
 * the standard `DecompressionStream('deflate-raw')` (browsers, Deno, Node 20+).
 *
 * The archive is untrusted: every offset and size is checked against the buffer before use, and
 * no allocation is sized by a value that was not checked against a limit first. Problems are
 * `ZipError`s that say what is wrong and where.
 */

export class ZipError extends Error {
  override name = 'ZipError';
}

export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflate. */
  method: 0 | 8;
  /** Bytes of the entry's data as stored in the archive. */
  compressedSize: number;
  /** Bytes once decompressed. */
  size: number;
  /** Where the entry's (possibly compressed) data starts in the archive. */
  dataOffset: number;
}

export interface ZipArchive {
  /** In central-directory order. */
  entries: Map<string, ZipEntry>;
  bytes: Uint8Array;
}

export interface ZipLimits {
  /** Most entries read from the central directory (default 1,000,000). */
  maxEntries?: number;
  /** Largest decompressed size of a deflated entry (default 4 GiB). */
  maxInflatedBytes?: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** True when the bytes start like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** Reads the archive's directory; the entries' data is read later with `zipEntryBytes`. */
export function readZip(input: Uint8Array, limits: ZipLimits = {}): ZipArchive {
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxEntries = limits.maxEntries ?? 1_000_000;
  const eocd = findEndOfCentralDirectory(bytes, view);
  let count = view.getUint16(eocd + 10, true);
  let directorySize = view.getUint32(eocd + 12, true);
  let directoryOffset = view.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR) {
    const record = u64(view, locator + 8, 'zip64 end record offset');
    if (record + 56 > locator) throw new ZipError(`zip64 end record at ${record} lies outside the archive`);
    if (view.getUint32(record, true) !== ZIP64_EOCD) throw new ZipError(`no zip64 end record at ${record}`);
    count = u64(view, record + 32, 'entry count');
    directorySize = u64(view, record + 40, 'central directory size');
    directoryOffset = u64(view, record + 48, 'central directory offset');
  }
  if (count > maxEntries) throw new ZipError(`${count} entries exceed the limit of ${maxEntries}`);
  if (directoryOffset + directorySize > bytes.length) {
    throw new ZipError(`central directory [${directoryOffset}, +${directorySize}) lies past the archive's ${bytes.length} bytes`);
  }
  const entries = new Map<string, ZipEntry>();
  let at = directoryOffset;
  const end = directoryOffset + directorySize;
  for (let i = 0; i < count; i++) {
    if (at + 46 > end) throw new ZipError(`central directory ends inside entry ${i} of ${count}`);
    if (view.getUint32(at, true) !== CENTRAL) throw new ZipError(`central directory entry ${i} has a bad signature`);
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > end) throw new ZipError(`central directory entry ${i} runs past the directory`);
    const name = decodeName(bytes.subarray(at + 46, at + 46 + nameLength), (flags & 0x800) !== 0);
    // Zip64: the 32-bit fields that overflowed hold 0xffffffff, their values follow in extra 0x0001.
    const zip64 = findExtra(view, at + 46 + nameLength, extraLength, 0x0001);
    if (zip64) {
      let p = zip64.offset;
      const take = (what: string) => {
        if (p + 8 > zip64.offset + zip64.length) throw new ZipError(`entry '${name}': zip64 field ${what} is missing`);
        const value = u64(view, p, `${what} of '${name}'`);
        p += 8;
        return value;
      };
      if (size === 0xffffffff) size = take('size');
      if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
      if (localOffset === 0xffffffff) localOffset = take('offset');
    }
    if (flags & 1) throw new ZipError(`entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) {
      throw new ZipError(`entry '${name}' uses compression method ${method} (only stored and deflate are read)`);
    }
    if (method === 0 && compressedSize !== size) {
      throw new ZipError(`stored entry '${name}' has ${compressedSize} stored bytes but a size of ${size}`);
    }
    if (entries.has(name)) throw new ZipError(`entry '${name}' appears twice`);
    if (localOffset + 30 > bytes.length || view.getUint32(localOffset, true) !== LOCAL) {
      throw new ZipError(`entry '${name}': no local header at ${localOffset}`);
    }
    const dataOffset = localOffset + 30 + view.getUint16(localOffset + 26, true) + view.getUint16(localOffset + 28, true);
    if (dataOffset + compressedSize > bytes.length) {
      throw new ZipError(`entry '${name}': data [${dataOffset}, +${compressedSize}) lies past the archive's ${bytes.length} bytes`);
    }
    entries.set(name, { name, method: method as 0 | 8, compressedSize, size, dataOffset });
    at = next;
  }
  return { entries, bytes };
}

/** A stored entry's bytes, as a view of the archive (no copy); undefined for a deflated one. */
export function storedEntryBytes(archive: ZipArchive, entry: ZipEntry): Uint8Array | undefined {
  if (entry.method !== 0) return undefined;
  return archive.bytes.subarray(entry.dataOffset, entry.dataOffset + entry.size);
}

/** An entry's bytes: a view when stored, decompressed (and checked against its size) when deflated. */
export async function zipEntryBytes(archive: ZipArchive, entry: ZipEntry, limits: ZipLimits = {}): Promise<Uint8Array> {
  const stored = storedEntryBytes(archive, entry);
  if (stored) return stored;
  const maxInflated = limits.maxInflatedBytes ?? 2 ** 32;
  if (entry.size > maxInflated) {
    throw new ZipError(`entry '${entry.name}' inflates to ${entry.size} bytes, over the limit of ${maxInflated}`);
  }
  return await inflateRaw(archive.bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize), entry.size, entry.name);
}

function findEndOfCentralDirectory(bytes: Uint8Array, view: DataView): number {
  if (bytes.length < EOCD_SIZE) throw new ZipError(`truncated archive: ${bytes.length} bytes, too short for its end record`);
  const lowest = Math.max(0, bytes.length - EOCD_SIZE - MAX_COMMENT);
  for (let at = bytes.length - EOCD_SIZE; at >= lowest; at--) {
    if (view.getUint32(at, true) === EOCD && at + EOCD_SIZE + view.getUint16(at + 20, true) === bytes.length) return at;
  }
  throw new ZipError('no end of central directory record: the archive is truncated or not a zip file');
}

function findExtra(view: DataView, start: number, length: number, id: number): { offset: number; length: number } | undefined {
  let at = start;
  while (at + 4 <= start + length) {
    const fieldId = view.getUint16(at, true);
    const fieldLength = view.getUint16(at + 2, true);
    if (at + 4 + fieldLength > start + length) return undefined;
    if (fieldId === id) return { offset: at + 4, length: fieldLength };
    at += 4 + fieldLength;
  }
  return undefined;
}

function u64(view: DataView, at: number, what: string): number {
  const value = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  if (!Number.isSafeInteger(value)) throw new ZipError(`${what} ${value} is too large`);
  return value;
}

function decodeName(raw: Uint8Array, utf8: boolean): string {
  if (utf8) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw new ZipError('an entry name is not valid UTF-8');
    }
  }
  return String.fromCharCode(...raw); // torch writes ASCII; other bytes stand for themselves
}

/** Raw deflate through the runtime's DecompressionStream, stopping at `size` bytes. */
async function inflateRaw(data: Uint8Array, size: number, name: string): Promise<Uint8Array> {
  let stream: DecompressionStream;
  try {
    stream = new DecompressionStream('deflate-raw');
  } catch {
    throw new ZipError(
      `entry '${name}' is deflate-compressed and this runtime has no DecompressionStream('deflate-raw') (Node 20+, Deno and current browsers do)`,
    );
  }
  const out = new Uint8Array(size);
  let filled = 0;
  // A view of the archive, whose buffer is a plain ArrayBuffer (the DOM types want it said).
  const reader = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > size) throw new ZipError(`entry '${name}' inflates to more than its ${size} bytes`);
      out.set(value, filled);
      filled += value.length;
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (error instanceof ZipError) throw error;
    throw new ZipError(`entry '${name}' does not inflate: ${(error as Error).message}`);
  }
  if (filled !== size) throw new ZipError(`entry '${name}' inflates to ${filled} bytes, not its ${size}`);
  return out;
}
