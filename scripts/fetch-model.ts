/**
 * Downloads a diffusers UNet2DModel from the Hugging Face Hub (or a mirror of it) into a local
 * folder, in the flat layout the engine loads: `config.json`, the weights and, when the repo has
 * one, `scheduler_config.json`. The weights are `diffusion_pytorch_model.safetensors`, or, in a
 * repo without one, the PyTorch pickle `diffusion_pytorch_model.bin` (the engine reads it without
 * running it: src/io/torch.ts).
 *
 *   deno run -A scripts/fetch-model.ts google/ddpm-cifar10-32 [--out DIR] [--revision REV] [--endpoint URL]
 *   node scripts/node.mjs scripts/fetch-model.ts google/ddpm-cifar10-32 [...]
 *
 * Only fetch, node:fs, node:path and the engine's file sniffing are used, so the same file runs in
 * Node and Deno. Each file
 * streams into `<name>.<random>.tmp` beside its destination, and every file is renamed into place
 * only once all of them have arrived and been checked: a failed or interrupted fetch leaves
 * nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { torchFormat } from '../src/io/torch.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** Where a repo may keep each file: a bare model repo, then a DDPMPipeline repo (unet/ + scheduler/). */
const LAYOUTS = [
  {
    name: 'root',
    config: 'config.json',
    weights: 'diffusion_pytorch_model.safetensors',
    pickle: 'diffusion_pytorch_model.bin',
    scheduler: 'scheduler_config.json',
  },
  {
    name: 'pipeline',
    config: 'unet/config.json',
    weights: 'unet/diffusion_pytorch_model.safetensors',
    pickle: 'unet/diffusion_pytorch_model.bin',
    scheduler: 'scheduler/scheduler_config.json',
  },
] as const;

type Layout = (typeof LAYOUTS)[number];

const LOCAL_SAFETENSORS = 'diffusion_pytorch_model.safetensors';
const LOCAL_PICKLE = 'diffusion_pytorch_model.bin';

/** Why a fetch failed: the CLI prints the message as is and exits with status 2. */
export type FetchModelErrorKind = 'usage' | 'not-found' | 'conflict' | 'http' | 'network' | 'invalid' | 'aborted';

export class FetchModelError extends Error {
  override name = 'FetchModelError';
  constructor(readonly kind: FetchModelErrorKind, message: string) {
    super(message);
  }
}

export interface FetchProgress {
  /** The file's path in the repo, e.g. `unet/config.json`. */
  file: string;
  received: number;
  /** From Content-Length; undefined when the server did not say. */
  total?: number;
  done: boolean;
}

export interface FetchModelOptions {
  /** Hub id, e.g. `google/ddpm-cifar10-32`. */
  id: string;
  /** Destination folder; made when missing. */
  out: string;
  /** Default https://huggingface.co. */
  endpoint?: string;
  /** Branch, tag, commit or `refs/pr/N`; default `main`. */
  revision?: string;
  onProgress?: (progress: FetchProgress) => void;
  /** Remarks that are not errors, e.g. that the repo has no scheduler config. */
  onNote?: (message: string) => void;
  signal?: AbortSignal;
}

export interface FetchedFile {
  /** Path in the repo. */
  source: string;
  /** Absolute local path. */
  path: string;
  bytes: number;
}

export interface FetchedModel {
  dir: string;
  layout: 'root' | 'pipeline';
  files: FetchedFile[];
  /** Which weights file the repo had: safetensors, or only the PyTorch pickle. */
  weights: 'safetensors' | 'pickle';
  /** The repo had no scheduler config in either layout. */
  schedulerMissing: boolean;
}

interface Download {
  source: string;
  tmp: string;
  dest: string;
  bytes: number;
}

interface Context {
  id: string;
  endpoint: string;
  revision: string;
  out: string;
  onProgress: (progress: FetchProgress) => void;
  signal?: AbortSignal;
  /** Temporary files written so far, removed on failure. */
  pending: string[];
}

const ID_PATTERN = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

export async function fetchModel(options: FetchModelOptions): Promise<FetchedModel> {
  const id = options.id.trim();
  if (!ID_PATTERN.test(id) || id.includes('..')) {
    throw new FetchModelError('usage', `"${options.id}" is not a model id like google/ddpm-cifar10-32`);
  }
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new FetchModelError('usage', `endpoint "${endpoint}" is not an http(s) URL`);
  }
  const revision = options.revision ?? DEFAULT_REVISION;
  const out = path.resolve(options.out);
  const note = options.onNote ?? (() => {});
  const createdDirs = makeDirs(out);
  const ctx: Context = { id, endpoint, revision, out, onProgress: options.onProgress ?? (() => {}), signal: options.signal, pending: [] };
  try {
    const result = await fetchAll(ctx, note);
    // Everything arrived and was checked: only now does any file take its final name.
    for (const file of result.downloads) fs.renameSync(file.tmp, file.dest);
    return {
      dir: out,
      layout: result.layout.name,
      files: result.downloads.map((d) => ({ source: d.source, path: d.dest, bytes: d.bytes })),
      weights: result.weights,
      schedulerMissing: result.schedulerMissing,
    };
  } catch (e) {
    for (const tmp of ctx.pending) fs.rmSync(tmp, { force: true });
    for (const dir of createdDirs.reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch { /* not empty: something else put files there */ }
    }
    if (e instanceof FetchModelError) throw e;
    if (options.signal?.aborted) throw new FetchModelError('aborted', 'download interrupted; nothing was kept');
    throw e;
  }
}

async function fetchAll(ctx: Context, note: (message: string) => void) {
  const missing: string[] = [];
  for (const layout of LAYOUTS) {
    const config = await download(ctx, layout.config, 'config.json');
    if (!config) {
      missing.push(layout.config);
      continue;
    }
    const weights = await downloadWeights(ctx, layout, note);
    if (!weights) {
      missing.push(`${layout.weights} or ${layout.pickle}`);
      fs.rmSync(config.tmp, { force: true });
      continue;
    }
    checkUnetConfig(ctx, config, note);
    const downloads = [config, weights.file];
    // A pipeline repo may still keep its scheduler config at the root, and the other way round.
    const schedulerPaths = [layout.scheduler, ...LAYOUTS.map((l) => l.scheduler).filter((p) => p !== layout.scheduler)];
    let scheduler: Download | null = null;
    for (const source of schedulerPaths) {
      scheduler = await download(ctx, source, 'scheduler_config.json');
      if (scheduler) break;
    }
    if (scheduler) {
      checkJson(ctx, scheduler);
      downloads.push(scheduler);
    } else {
      note(
        `${ctx.id} has no scheduler config (${schedulerPaths.join(' or ')}) at revision ${ctx.revision}: ` +
          'that is fine, the sampler then uses DDPM defaults (linear betas 1e-4..0.02, 1000 steps)',
      );
      if (fs.existsSync(path.join(ctx.out, 'scheduler_config.json'))) {
        note(`${path.join(ctx.out, 'scheduler_config.json')} is left from an earlier fetch; delete it if it belongs to another model`);
      }
    }
    return { layout, downloads, weights: weights.kind, schedulerMissing: !scheduler };
  }
  const configs = LAYOUTS.map((l) => l.config);
  const lacking = missing.every((m) => configs.includes(m as never))
    ? configs.join(' or ')
    : missing.filter((m) => !configs.includes(m as never)).join(' or ');
  throw new FetchModelError('not-found', `model ${ctx.id} has no file ${lacking} at revision ${ctx.revision} (${ctx.endpoint})`);
}

/**
 * The layout's safetensors weights, else its PyTorch pickle; null when it has neither. The local
 * names are the repo's, since the engine's folder reader tells the two apart by name.
 */
async function downloadWeights(
  ctx: Context,
  layout: Layout,
  note: (message: string) => void,
): Promise<{ file: Download; kind: 'safetensors' | 'pickle' } | null> {
  const safetensors = await download(ctx, layout.weights, LOCAL_SAFETENSORS);
  if (safetensors) {
    checkSafetensors(ctx, safetensors);
    const stale = path.join(ctx.out, LOCAL_PICKLE);
    if (fs.existsSync(stale)) note(`${stale} is left from an earlier fetch; the engine reads the safetensors beside it`);
    return { file: safetensors, kind: 'safetensors' };
  }
  if (!(await exists(ctx, layout.pickle))) return null;
  // The engine prefers a safetensors file when a folder has both: one left here would be read instead.
  const stale = path.join(ctx.out, LOCAL_SAFETENSORS);
  if (fs.existsSync(stale)) {
    throw new FetchModelError(
      'conflict',
      `model ${ctx.id} has its weights as ${layout.pickle} only, but ${stale} is already there and the engine would read that ` +
        'instead: delete it, or fetch into another --out folder',
    );
  }
  const pickle = await download(ctx, layout.pickle, LOCAL_PICKLE);
  if (!pickle) return null;
  checkTorchFile(ctx, pickle);
  note(`${ctx.id} has no safetensors weights: fetched the PyTorch pickle ${layout.pickle} (read as data, never run)`);
  return { file: pickle, kind: 'pickle' };
}

function fileUrl(ctx: Context, source: string): string {
  return `${ctx.endpoint}/${ctx.id}/resolve/${encodeURIComponent(ctx.revision)}/${source}`;
}

function oneLine(e: unknown): string {
  const err = e as { message?: string; cause?: { message?: string; code?: string } };
  const parts = [err?.message ?? String(e)];
  if (err?.cause?.message && !parts[0].includes(err.cause.message)) parts.push(err.cause.message);
  else if (err?.cause?.code) parts.push(err.cause.code);
  return parts.join(': ').replace(/\s+/g, ' ').trim();
}

function failure(ctx: Context, url: string, e: unknown, during: string): FetchModelError {
  if (e instanceof FetchModelError) return e;
  if (ctx.signal?.aborted) return new FetchModelError('aborted', 'download interrupted; nothing was kept');
  const why = oneLine(e).replaceAll(` for url (${url})`, '').replaceAll(url, 'it');
  return new FetchModelError('network', `network error ${during} ${url}: ${why}`);
}

async function request(ctx: Context, source: string, method: 'GET' | 'HEAD'): Promise<Response | null> {
  const url = fileUrl(ctx, source);
  let response: Response;
  try {
    // identity: Content-Length must count the bytes that reach the file, for progress and for
    // telling a complete body from a cut one.
    response = await fetch(url, { method, signal: ctx.signal, headers: { 'accept-encoding': 'identity' } });
  } catch (e) {
    throw failure(ctx, url, e, 'requesting');
  }
  if (response.ok) return response;
  await response.body?.cancel().catch(() => {});
  // The Hub names what is missing in X-Error-Code; a plain 404 is a missing file.
  const code = response.headers.get('x-error-code');
  if (code === 'RepositoryNotFound' || response.status === 401) {
    throw new FetchModelError(
      'not-found',
      `model ${ctx.id} was not found at ${ctx.endpoint} (HTTP ${response.status}): check the id; private and gated models are not supported`,
    );
  }
  if (code === 'RevisionNotFound') {
    throw new FetchModelError('not-found', `model ${ctx.id} has no revision ${ctx.revision}`);
  }
  if (response.status === 404) return null;
  throw new FetchModelError('http', `${url} answered HTTP ${response.status} ${response.statusText}`.trim());
}

async function exists(ctx: Context, source: string): Promise<boolean> {
  return (await request(ctx, source, 'HEAD')) !== null;
}

/** Streams one file into a temporary name in the destination folder; null when the repo lacks it. */
async function download(ctx: Context, source: string, localName: string): Promise<Download | null> {
  const response = await request(ctx, source, 'GET');
  if (!response) return null;
  const url = fileUrl(ctx, source);
  const encoding = response.headers.get('content-encoding');
  const length = response.headers.get('content-length');
  const total = length !== null && (!encoding || encoding === 'identity') ? Number(length) : undefined;
  const dest = path.join(ctx.out, localName);
  const tmp = `${dest}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  ctx.pending.push(tmp);
  const file = await fs.promises.open(tmp, 'wx');
  let received = 0;
  try {
    ctx.onProgress({ file: source, received, total, done: false });
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw failure(ctx, url, e, `after ${received} bytes of`);
        }
        if (chunk.done) break;
        const bytes = chunk.value;
        for (let offset = 0; offset < bytes.byteLength;) {
          offset += (await file.write(bytes, offset, bytes.byteLength - offset)).bytesWritten;
        }
        received += bytes.byteLength;
        ctx.onProgress({ file: source, received, total, done: false });
      }
    }
  } finally {
    await file.close();
  }
  if (total !== undefined && received !== total) {
    throw new FetchModelError('network', `network error: ${url} ended after ${received} of ${total} bytes`);
  }
  ctx.onProgress({ file: source, received, total: total ?? received, done: true });
  return { source, tmp, dest, bytes: received };
}

function checkJson(ctx: Context, file: Download): Record<string, unknown> {
  try {
    const value = JSON.parse(fs.readFileSync(file.tmp, 'utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch { /* reported below */ }
  throw new FetchModelError('invalid', `${fileUrl(ctx, file.source)} is not a JSON object (is the endpoint a Hugging Face Hub?)`);
}

function checkUnetConfig(ctx: Context, file: Download, note: (message: string) => void): void {
  const config = checkJson(ctx, file);
  const cls = config['_class_name'];
  if (typeof cls === 'string' && cls !== 'UNet2DModel') {
    note(`${file.source} describes a ${cls}, not a UNet2DModel; the engine may refuse it`);
  }
}

/** A safetensors file: u64 little-endian header size, a JSON header, then the tensors' bytes. */
function checkSafetensors(ctx: Context, file: Download): void {
  const bad = (why: string) => new FetchModelError('invalid', `${fileUrl(ctx, file.source)} is not a safetensors file (${why})`);
  const fd = fs.openSync(file.tmp, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (size < 8 || fs.readSync(fd, prefix, 0, 8, 0) !== 8) throw bad('shorter than 8 bytes');
    const headerSize = Number(new DataView(prefix.buffer).getBigUint64(0, true));
    if (headerSize < 2 || 8 + headerSize > size) throw bad(`header of ${headerSize} bytes in a file of ${size}`);
    const headerBytes = new Uint8Array(headerSize);
    fs.readSync(fd, headerBytes, 0, headerSize, 8);
    let header: Record<string, { data_offsets?: [number, number] }>;
    try {
      header = JSON.parse(new TextDecoder().decode(headerBytes));
    } catch {
      throw bad('its header is not JSON');
    }
    let end = 0;
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const offsets = entry?.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2) throw bad(`tensor ${name} has no data_offsets`);
      end = Math.max(end, offsets[1]);
    }
    if (8 + headerSize + end !== size) throw bad(`its tensors end at byte ${8 + headerSize + end}, the file has ${size}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** A torch.save file (zip, or the legacy pickle stream) by its first bytes; the engine reads the rest when loading. */
function checkTorchFile(ctx: Context, file: Download): void {
  const head = new Uint8Array(4);
  const fd = fs.openSync(file.tmp, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (!torchFormat(head)) {
    throw new FetchModelError(
      'invalid',
      `${fileUrl(ctx, file.source)} is not a PyTorch (torch.save) file: it starts with neither a zip nor a pickle header`,
    );
  }
}

/** Makes `dir` and any missing parents; returns those it made, outermost first. */
function makeDirs(dir: string): string[] {
  const made: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) made.unshift(d);
  fs.mkdirSync(dir, { recursive: true });
  return made;
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: fetch-model <hub-id> [--out DIR] [--revision REV] [--endpoint URL]

Downloads a diffusers UNet2DModel (config.json, diffusion_pytorch_model.safetensors, or
diffusion_pytorch_model.bin when the repo has no safetensors, and scheduler_config.json, from
the repo root or from unet/ + scheduler/) into DIR.
  --out DIR        destination folder (default: weights/<model name>)
  --revision REV   branch, tag, commit or refs/pr/N (default: main)
  --endpoint URL   hub address (default: $HF_ENDPOINT, else ${DEFAULT_ENDPOINT})
examples:
  npm run fetch-model -- google/ddpm-cifar10-32
  deno run -A scripts/fetch-model.ts google/ddpm-cifar10-32
  node scripts/node.mjs scripts/fetch-model.ts google/ddpm-cifar10-32 --out weights/cifar10`;

export interface CliOptions {
  id: string;
  out: string;
  endpoint: string;
  revision: string;
}

/** Parses the command line; `help` when -h/--help was given. */
export function parseArgs(args: string[], env: (name: string) => string | undefined): CliOptions | 'help' {
  const named: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') return 'help';
    const m = /^--(out|revision|endpoint)(?:=(.*))?$/.exec(arg);
    if (m) {
      const value = m[2] ?? args[++i];
      if (value === undefined || value === '') throw new FetchModelError('usage', `--${m[1]} needs a value\n${USAGE}`);
      named[m[1]] = value;
    } else if (arg.startsWith('-')) {
      throw new FetchModelError('usage', `unknown option ${arg}\n${USAGE}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) throw new FetchModelError('usage', USAGE);
  const id = positional[0];
  return {
    id,
    out: named.out ?? path.join('weights', id.split('/').pop()!),
    endpoint: named.endpoint ?? (env('HF_ENDPOINT') || DEFAULT_ENDPOINT),
    revision: named.revision ?? DEFAULT_REVISION,
  };
}

function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** The few process facilities the CLI needs, from Deno or Node. */
const runtime = {
  args: (): string[] => (g.Deno ? g.Deno.args : g.process.argv.slice(2)),
  env: (name: string): string | undefined => (g.Deno ? g.Deno.env.get(name) : g.process.env[name]),
  isTty: (): boolean => (g.Deno ? g.Deno.stderr.isTerminal() : !!g.process.stderr.isTTY),
  write(text: string): void {
    if (!g.Deno) {
      g.process.stderr.write(text);
      return;
    }
    const bytes = new TextEncoder().encode(text);
    for (let n = 0; n < bytes.length;) n += g.Deno.stderr.writeSync(bytes.subarray(n));
  },
  onInterrupt(handler: () => void): void {
    if (g.Deno) g.Deno.addSignalListener('SIGINT', handler);
    else g.process.on('SIGINT', handler);
  },
  exit(code: number): void {
    if (g.Deno) g.Deno.exit(code);
    else g.process.exit(code);
  },
};

function progressPrinter(tty: boolean): (p: FetchProgress) => void {
  let lastDraw = 0;
  return (p) => {
    const name = p.file.padEnd(44);
    const amount = p.total !== undefined ? `${formatBytes(p.received)} / ${formatBytes(p.total)}` : formatBytes(p.received);
    if (!tty) {
      if (p.done) runtime.write(`  ${name} ${amount}\n`);
      return;
    }
    const now = Date.now();
    if (!p.done && now - lastDraw < 100) return;
    lastDraw = now;
    const width = 24;
    const filled = p.total ? Math.round((width * p.received) / p.total) : 0;
    const bar = p.total ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]` : '';
    runtime.write(`\r\x1b[2K  ${name} ${bar} ${amount}${p.done ? '\n' : ''}`);
  };
}

async function main(): Promise<number> {
  let cli: CliOptions | 'help';
  try {
    cli = parseArgs(runtime.args(), runtime.env);
  } catch (e) {
    runtime.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (cli === 'help') {
    runtime.write(`${USAGE}\n`);
    return 0;
  }
  const controller = new AbortController();
  runtime.onInterrupt(() => controller.abort());
  const tty = runtime.isTty();
  runtime.write(`fetching ${cli.id} (revision ${cli.revision}) from ${cli.endpoint} into ${path.resolve(cli.out)}\n`);
  const started = Date.now();
  try {
    const model = await fetchModel({
      ...cli,
      signal: controller.signal,
      onProgress: progressPrinter(tty),
      onNote: (message) => runtime.write(`${tty ? '\r\x1b[2K' : ''}note: ${message}\n`),
    });
    const bytes = model.files.reduce((sum, f) => sum + f.bytes, 0);
    runtime.write(
      `done: ${model.files.length} files, ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
        `(${model.layout} layout) -> ${model.dir}\n`,
    );
    return 0;
  } catch (e) {
    const message = e instanceof FetchModelError ? e.message : oneLine(e);
    runtime.write(`${tty ? '\r\x1b[2K' : ''}error: ${message}\n`);
    return controller.signal.aborted ? 130 : 2;
  }
}

/** True when this module is the program (not imported by a test or another module). */
function isEntryPoint(): boolean {
  if (g.Deno) return import.meta.main === true;
  const script = g.process?.argv?.[1];
  if (!script || !import.meta.url.startsWith('file:')) return false;
  const self = decodeURIComponent(new URL(import.meta.url).pathname).replace(/^\/([A-Za-z]:)/, '$1');
  return path.resolve(self) === path.resolve(script);
}

if (isEntryPoint()) runtime.exit(await main());
