/**
 * Dawn's notes on stderr while it finds adapters, kept from the user.
 *
 * The first time a Dawn instance enumerates adapters, it lowers each adapter's limits to its own
 * caps and says so on the process's stderr with a plain fprintf that no WebGPU callback sees. On
 * lavapipe (and RADV), whose Vulkan limits allow a million dynamic buffers, every run starts with
 *
 *   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
 *   Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
 *
 * They come from the driver's own numbers in requestAdapter, before any limit is requested, and
 * leave the user nothing to do (the engine uses no dynamic offsets). requestAdapter enumerates
 * synchronously, so for that one call fd 2 is pointed at an unlinked temporary file; then fd 2 is
 * given back and what Dawn wrote is passed on to stderr, all but these known notes, which the
 * caller keeps for a verbose log. Node has no dup2: fd 2 is closed and the lowest free descriptor,
 * which is then 2, is opened through /proc/self/fd on the file, and later on the original stream.
 *
 * Only where that gives the same stream back: Node on Linux, stderr a terminal or a pipe (a file
 * reopened would write at an offset of its own; a socket cannot be reopened), and no stderr write
 * of Node's still pending. Deno loads Dawn (a Node-API addon) only with the ffi permission, and
 * with it calls libc's dup and dup2, which keep any stream as it was (files and sockets too).
 * Anywhere else Dawn's lines pass as they always did, but the command line and the bench under
 * Node with stderr on a file or socket run themselves in a child whose stderr is a pipe
 * (src/cli/stderr_relay.ts).
 */

/** The notes Dawn prints when it clamps an adapter's dynamic buffer counts: nothing for a user to act on. */
const KNOWN_NOTE =
  /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

/** Splits what Dawn wrote into the text to pass on to stderr and the known notes held back. */
export function sortDawnOutput(text: string): { passOn: string; notes: string[] } {
  const notes: string[] = [];
  const kept: string[] = [];
  for (const line of text.split(/(?<=\n)/)) {
    if (KNOWN_NOTE.test(line.replace(/\r?\n$/, ''))) notes.push(line.trim());
    else kept.push(line);
  }
  return { passOn: kept.join(''), notes };
}

/** The few node:fs calls used (typed here: the browser build's type check knows no more of node:fs). */
interface FdCalls {
  openSync(path: string, flags: string | number, mode?: number): number;
  closeSync(fd: number): void;
  unlinkSync(path: string): void;
  fstatSync(fd: number): { size: number; isCharacterDevice(): boolean; isFIFO(): boolean };
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  constants: { O_WRONLY: number; O_NOCTTY: number; O_NONBLOCK: number };
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const isNodeOnLinux = typeof g.Deno === 'undefined' && !!g.process?.versions?.node && g.process.platform === 'linux';
const LIBC: Record<string, string> = { linux: 'libc.so.6', darwin: 'libSystem.B.dylib' };

/**
 * Runs `call` (a Dawn call that may print) with fd 2 captured where that is safe, and returns its
 * value with the known notes it printed; anything else it printed goes on to stderr.
 */
export async function withDawnNotesHeldBack<T>(call: () => T): Promise<{ value: T; notes: string[] }> {
  const fs = isNodeOnLinux ? (await import('node:fs')) as unknown as FdCalls : undefined;
  const captured = fs ? captureStderr(fs, call) : captureStderrInDeno(call);
  if (!captured) return { value: call(), notes: [] };
  const { passOn, notes } = sortDawnOutput(captured.output);
  if (passOn) {
    if (fs) g.process.stderr.write(passOn);
    else g.Deno.stderr.writeSync(new TextEncoder().encode(passOn));
  }
  return { value: captured.value, notes };
}

/** Deno with the ffi permission (which Dawn needs there): fd 2 swapped with dup2 for a temporary file and back. */
function captureStderrInDeno<T>(call: () => T): { value: T; output: string } | undefined {
  const Deno = g.Deno;
  const libcPath = LIBC[Deno?.build?.os];
  if (!libcPath || Deno.permissions?.querySync?.({ name: 'ffi' })?.state !== 'granted') return undefined;
  let libc;
  try {
    libc = Deno.dlopen(libcPath, {
      dup: { parameters: ['i32'], result: 'i32' },
      dup2: { parameters: ['i32', 'i32'], result: 'i32' },
      close: { parameters: ['i32'], result: 'i32' },
      mkstemp: { parameters: ['buffer'], result: 'i32' },
      lseek: { parameters: ['i32', 'i64', 'i32'], result: 'i64' },
      read: { parameters: ['i32', 'buffer', 'usize'], result: 'isize' },
    });
  } catch {
    return undefined;
  }
  const c = libc.symbols;
  let file = -1;
  let original = -1;
  try {
    const template = new TextEncoder().encode(`${Deno.env.get('TMPDIR') || '/tmp'}/ddim-dawn-stderr-XXXXXX\0`);
    file = c.mkstemp(template);
    if (file < 0) return undefined;
    Deno.removeSync(new TextDecoder().decode(template.subarray(0, -1)));
    original = c.dup(2);
    if (original < 0 || c.dup2(file, 2) !== 2) return undefined;
    let value: T;
    try {
      value = call();
    } finally {
      c.dup2(original, 2);
    }
    const chunks: Uint8Array[] = [];
    c.lseek(file, 0n, 0);
    for (;;) {
      const chunk = new Uint8Array(1 << 16);
      const got = Number(c.read(file, chunk, BigInt(chunk.length)));
      if (got <= 0) break;
      chunks.push(chunk.subarray(0, got));
    }
    return { value, output: new TextDecoder().decode(concatBytes(chunks)) };
  } finally {
    if (original >= 0) c.close(original);
    if (file >= 0) c.close(file);
    libc.close();
  }
}

function concatBytes(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

function captureStderr<T>(fs: FdCalls, call: () => T): { value: T; output: string } | undefined {
  const stderr = g.process.stderr; // made now if not yet, so that Node does not make it on the capture
  if (stderr.writableLength > 0) return undefined;
  let kind: ReturnType<FdCalls['fstatSync']>;
  try {
    kind = fs.fstatSync(2);
  } catch {
    return undefined;
  }
  if (!kind.isCharacterDevice() && !kind.isFIFO()) return undefined;
  const { O_WRONLY, O_NOCTTY, O_NONBLOCK } = fs.constants;
  // A pipe is opened without waiting for a reader (with none left, ENXIO: no capture), and
  // non-blocking as Node keeps its stderr pipe.
  const reopenFlags = O_WRONLY | O_NOCTTY | (kind.isFIFO() ? O_NONBLOCK : 0);
  let file = -1;
  let original = -1;
  try {
    const path = `${g.process.env.TMPDIR || '/tmp'}/ddim-dawn-stderr-${g.process.pid}-${Math.random().toString(36).slice(2)}`;
    file = fs.openSync(path, 'wx+', 0o600);
    fs.unlinkSync(path);
    original = fs.openSync('/proc/self/fd/2', reopenFlags);
  } catch {
    if (file >= 0) fs.closeSync(file);
    if (original >= 0) fs.closeSync(original);
    return undefined;
  }
  // Between these two calls fd 2 is free: only another thread opening a file in that instant could
  // take it, and none is at work before the first device exists.
  fs.closeSync(2);
  const into = fs.openSync(`/proc/self/fd/${file}`, O_WRONLY); // the lowest free descriptor: 2
  let value: T;
  try {
    value = call();
  } finally {
    fs.closeSync(into);
    fs.openSync(`/proc/self/fd/${original}`, reopenFlags); // 2 again
    fs.closeSync(original);
  }
  const bytes = new Uint8Array(fs.fstatSync(file).size);
  fs.readSync(file, bytes, 0, bytes.length, 0);
  fs.closeSync(file);
  return { value, output: new TextDecoder().decode(bytes) };
}
