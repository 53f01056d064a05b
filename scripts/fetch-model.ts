/**
 * Downloads a diffusers model from the Hugging Face Hub (or a mirror of it) into a local folder.
 *
 *   deno run -A scripts/fetch-model.ts google/ddpm-cifar10-32 [--out DIR] [--revision REV] [--endpoint URL] [--variant fp16]
 *   node scripts/node.mjs scripts/fetch-model.ts google/ddpm-cifar10-32 [...]
 *
 * Two kinds of repo:
 *   - a single UNet2DModel (a bare model repo, or a DDPMPipeline whose model_index.json names only
 *     unet and scheduler) lands in the flat layout the engine loads: `config.json`, the weights and,
 *     when the repo has one, `scheduler_config.json`;
 *   - any other pipeline (model_index.json naming a vae, vqvae, text_encoder or tokenizer: Stable
 *     Diffusion, LDM) keeps the hub's layout: model_index.json at the root and a folder per
 *     component the engine uses (unet, vae or vqvae, scheduler, text_encoder, tokenizer); the others
 *     (safety_checker, feature_extractor, ...) are left out.
 * Weights are safetensors when the repo has them, else the PyTorch pickle `.bin` (the engine reads
 * it without running it: src/io/torch.ts); with --variant fp16, the `.fp16.` files first.
 *
 * Only fetch, node:fs, node:path and the engine's file sniffing are used, so the same file runs in
 * Node and Deno. Each file streams into `<name>.<random>.tmp` beside its destination, and every
 * file is renamed into place only once all of them have arrived and been checked: a failed or
 * interrupted fetch leaves nothing behind. The hub is asked for each path in turn (HTTP 404: the
 * repo lacks it); no listing API is used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { torchFormat } from '../src/io/torch.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** Where a single-UNet repo may keep each file: a bare model repo, then a DDPMPipeline repo (unet/ + scheduler/). */
const LAYOUTS = [
  { name: 'root', dir: '', config: 'config.json', scheduler: 'scheduler_config.json' },
  { name: 'pipeline', dir: 'unet/', config: 'unet/config.json', scheduler: 'scheduler/scheduler_config.json' },
] as const;

const MODEL_INDEX = 'model_index.json';

/** Weights file names by the library that saved them. */
interface WeightNames {
  safetensors: string;
  pickle: string;
}
const DIFFUSERS_WEIGHTS: WeightNames = { safetensors: 'diffusion_pytorch_model.safetensors', pickle: 'diffusion_pytorch_model.bin' };
const TRANSFORMERS_WEIGHTS: WeightNames = { safetensors: 'model.safetensors', pickle: 'pytorch_model.bin' };

/** The flat layout's weights names, whatever the repo's file was called (the engine finds them by these names). */
const LOCAL_SAFETENSORS = DIFFUSERS_WEIGHTS.safetensors;
const LOCAL_PICKLE = DIFFUSERS_WEIGHTS.pickle;

/** The pipeline components the engine runs, in the order they are fetched; model_index.json may name others. */
const USED_COMPONENTS = ['unet', 'vae', 'vqvae', 'text_encoder', 'tokenizer', 'scheduler'] as const;
/** Components a single-UNet repo may name; any other makes the repo a pipeline kept in the hub's layout. */
const SINGLE_UNET_COMPONENTS = ['unet', 'scheduler'];

/** Why a fetch failed: the CLI prints the message as is and exits with status 2. */
export type FetchModelErrorKind = 'usage' | 'not-found' | 'conflict' | 'http' | 'network' | 'invalid' | 'unsupported' | 'aborted';

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
  /** Weights variant, e.g. `fp16`: `<name>.fp16.safetensors` is fetched instead of `<name>.safetensors` where the repo has it. */
  variant?: string;
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

export type WeightsKind = 'safetensors' | 'pickle';

/** One component of a pipeline kept in the hub's layout. */
export interface FetchedComponent {
  /** Its folder, e.g. `vae`. */
  name: string;
  /** From model_index.json, e.g. `diffusers` and `AutoencoderKL`. */
  library: string;
  className: string;
  /** The weights fetched; absent for the scheduler and the tokenizer. */
  weights?: { source: string; kind: WeightsKind; variant: boolean };
}

export interface FetchedModel {
  dir: string;
  /**
   * root: a bare model repo; pipeline: a DDPMPipeline's unet/ + scheduler/ (both land flat);
   * components: a pipeline kept in the hub's layout (model_index.json + a folder per component).
   */
  layout: 'root' | 'pipeline' | 'components';
  files: FetchedFile[];
  /** Which weights file the repo had for the UNet: safetensors, or only the PyTorch pickle. */
  weights: WeightsKind;
  /** The repo had no scheduler config (a pipeline: model_index.json names no scheduler). */
  schedulerMissing: boolean;
  /** layout `components`: what was fetched of each component, in the order fetched. */
  components?: FetchedComponent[];
  /** layout `components`: the components of model_index.json left out, the engine not using them. */
  skipped?: string[];
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
  variant?: string;
  out: string;
  onProgress: (progress: FetchProgress) => void;
  note: (message: string) => void;
  signal?: AbortSignal;
  /** Temporary files written so far, removed on failure. */
  pending: string[];
  /** Folders this fetch made, outermost first, removed on failure. */
  createdDirs: string[];
}

const ID_PATTERN = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;
const VARIANT_PATTERN = /^[A-Za-z0-9][\w-]*$/;

export async function fetchModel(options: FetchModelOptions): Promise<FetchedModel> {
  const id = options.id.trim();
  if (!ID_PATTERN.test(id) || id.includes('..')) {
    throw new FetchModelError('usage', `"${options.id}" is not a model id like google/ddpm-cifar10-32`);
  }
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new FetchModelError('usage', `endpoint "${endpoint}" is not an http(s) URL`);
  }
  if (options.variant !== undefined && !VARIANT_PATTERN.test(options.variant)) {
    throw new FetchModelError('usage', `variant "${options.variant}" is not a name like fp16`);
  }
  const revision = options.revision ?? DEFAULT_REVISION;
  const out = path.resolve(options.out);
  const ctx: Context = {
    id,
    endpoint,
    revision,
    variant: options.variant,
    out,
    onProgress: options.onProgress ?? (() => {}),
    note: options.onNote ?? (() => {}),
    signal: options.signal,
    pending: [],
    createdDirs: [],
  };
  try {
    ensureDir(ctx, out);
    const result = await fetchAll(ctx);
    // Everything arrived and was checked: only now does any file take its final name.
    for (const file of result.downloads) fs.renameSync(file.tmp, file.dest);
    return {
      dir: out,
      layout: result.layout,
      files: result.downloads.map((d) => ({ source: d.source, path: d.dest, bytes: d.bytes })),
      weights: result.weights,
      schedulerMissing: result.schedulerMissing,
      ...(result.components ? { components: result.components, skipped: result.skipped } : {}),
    };
  } catch (e) {
    for (const tmp of ctx.pending) fs.rmSync(tmp, { force: true });
    for (const dir of ctx.createdDirs.reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch { /* not empty: something else put files there */ }
    }
    if (e instanceof FetchModelError) throw e;
    if (options.signal?.aborted) throw new FetchModelError('aborted', 'download interrupted; nothing was kept');
    throw e;
  }
}

interface FetchResult {
  layout: FetchedModel['layout'];
  downloads: Download[];
  weights: WeightsKind;
  schedulerMissing: boolean;
  components?: FetchedComponent[];
  skipped?: string[];
}

async function fetchAll(ctx: Context): Promise<FetchResult> {
  const index = await download(ctx, MODEL_INDEX, MODEL_INDEX, { progress: false });
  if (index) {
    const components = readModelIndex(ctx, index);
    if (components.some((c) => !SINGLE_UNET_COMPONENTS.includes(c.name))) return await fetchPipeline(ctx, index, components);
    // A DDPMPipeline: its UNet lands flat, as from a bare model repo, and its model_index.json is not kept.
    fs.rmSync(index.tmp, { force: true });
  }
  return await fetchSingleUnet(ctx);
}

async function fetchSingleUnet(ctx: Context): Promise<FetchResult> {
  const missing: string[] = [];
  for (const layout of LAYOUTS) {
    const config = await download(ctx, layout.config, 'config.json');
    if (!config) {
      missing.push(layout.config);
      continue;
    }
    const candidates = weightsCandidates(ctx, DIFFUSERS_WEIGHTS, layout.dir, true);
    const weights = await downloadWeights(ctx, candidates, ctx.id);
    if (!weights) {
      missing.push(joinOr(candidates.map((c) => c.source)));
      fs.rmSync(config.tmp, { force: true });
      continue;
    }
    checkUnetConfig(ctx, config);
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
      ctx.note(
        `${ctx.id} has no scheduler config (${schedulerPaths.join(' or ')}) at revision ${ctx.revision}: ` +
          'that is fine, the sampler then uses DDPM defaults (linear betas 1e-4..0.02, 1000 steps)',
      );
      if (fs.existsSync(path.join(ctx.out, 'scheduler_config.json'))) {
        ctx.note(`${path.join(ctx.out, 'scheduler_config.json')} is left from an earlier fetch; delete it if it belongs to another model`);
      }
    }
    return { layout: layout.name, downloads, weights: weights.kind, schedulerMissing: !scheduler };
  }
  const configs: string[] = LAYOUTS.map((l) => l.config);
  const lacking = missing.every((m) => configs.includes(m))
    ? configs.join(' or ')
    : missing.filter((m) => !configs.includes(m)).join(' or ');
  throw new FetchModelError('not-found', `model ${ctx.id} has no file ${lacking} at revision ${ctx.revision} (${ctx.endpoint})`);
}

interface PipelineComponent {
  name: string;
  library: string;
  className: string;
}

/** model_index.json's components: entries `name: [library, class]`; `_`-keys, nulls and other values are settings. */
function readModelIndex(ctx: Context, file: Download): PipelineComponent[] {
  const index = checkJson(ctx, file);
  const components: PipelineComponent[] = [];
  for (const [name, value] of Object.entries(index)) {
    if (name.startsWith('_') || !Array.isArray(value) || typeof value[0] !== 'string' || typeof value[1] !== 'string') continue;
    components.push({ name, library: value[0], className: value[1] });
  }
  return components;
}

/** What a used component keeps besides its weights, and the names of its weights. */
function componentFiles(component: PipelineComponent): { required: string[]; optional: string[]; weights?: WeightNames } {
  if (component.name === 'scheduler') return { required: ['scheduler_config.json'], optional: [] };
  if (component.name === 'tokenizer') {
    return { required: ['vocab.json', 'merges.txt'], optional: ['tokenizer_config.json', 'special_tokens_map.json'] };
  }
  return {
    required: ['config.json'],
    optional: [],
    weights: component.library === 'transformers' ? TRANSFORMERS_WEIGHTS : DIFFUSERS_WEIGHTS,
  };
}

/** A pipeline, kept in the hub's layout: model_index.json and the folders of the components the engine uses. */
async function fetchPipeline(ctx: Context, index: Download, components: PipelineComponent[]): Promise<FetchResult> {
  const describe = (c: PipelineComponent) => `${c.name} (${c.library} ${c.className})`;
  if (!components.some((c) => c.name === 'unet')) {
    throw new FetchModelError(
      'unsupported',
      `model ${ctx.id} is a pipeline without a unet (its model_index.json lists ${components.map(describe).join(', ')}): ` +
        'the engine runs UNet pipelines only',
    );
  }
  const used = USED_COMPONENTS.flatMap((name) => components.filter((c) => c.name === name));
  const skipped = components.filter((c) => !used.includes(c));
  if (skipped.length) ctx.note(`skipped what the engine does not use: ${skipped.map(describe).join(', ')}`);
  ctx.onProgress({ file: index.source, received: index.bytes, total: index.bytes, done: true });
  const downloads = [index];
  // Every component's small files first, so that a missing component is said before gigabytes of weights arrive.
  for (const component of used) {
    const files = componentFiles(component);
    for (const name of [...files.required, ...files.optional]) {
      const source = `${component.name}/${name}`;
      const file = await download(ctx, source, source);
      if (!file) {
        if (files.optional.includes(name)) continue;
        throw new FetchModelError(
          'not-found',
          `model ${ctx.id} lists ${describe(component)} in ${MODEL_INDEX}, but has no ${source} at revision ${ctx.revision} ` +
            `(${ctx.endpoint})`,
        );
      }
      if (name.endsWith('.json')) checkJson(ctx, file);
      downloads.push(file);
    }
  }
  const fetched: FetchedComponent[] = [];
  for (const component of used) {
    const names = componentFiles(component).weights;
    if (!names) {
      fetched.push({ ...component });
      continue;
    }
    const candidates = weightsCandidates(ctx, names, `${component.name}/`, false);
    const weights = await downloadWeights(ctx, candidates, `the ${component.name} of ${ctx.id}`);
    if (!weights) {
      throw new FetchModelError(
        'not-found',
        `model ${ctx.id} has no file ${joinOr(candidates.map((c) => c.source))} at revision ${ctx.revision} (${ctx.endpoint})`,
      );
    }
    downloads.push(weights.file);
    fetched.push({ ...component, weights: { source: weights.file.source, kind: weights.kind, variant: weights.variant } });
  }
  return {
    layout: 'components',
    downloads,
    weights: fetched.find((c) => c.name === 'unet')!.weights!.kind,
    schedulerMissing: !used.some((c) => c.name === 'scheduler'),
    components: fetched,
    skipped: skipped.map((c) => c.name),
  };
}

interface WeightsCandidate {
  /** Path in the repo. */
  source: string;
  /** Path under the output folder. */
  local: string;
  kind: WeightsKind;
  variant: boolean;
}

/** `a.safetensors` → `a.fp16.safetensors`, as diffusers and transformers name a variant. */
function variantName(file: string, variant: string): string {
  const dot = file.lastIndexOf('.');
  return `${file.slice(0, dot)}.${variant}${file.slice(dot)}`;
}

/**
 * The weights files to try, preferred first: the variant's (when asked for), then the plain ones;
 * safetensors before the pickle. `flat`: they land under the flat layout's names, which the
 * engine's folder reader looks for; else under their names in the repo.
 */
function weightsCandidates(ctx: Context, names: WeightNames, dir: string, flat: boolean): WeightsCandidate[] {
  const plain = [
    { file: names.safetensors, kind: 'safetensors' as const, local: LOCAL_SAFETENSORS },
    { file: names.pickle, kind: 'pickle' as const, local: LOCAL_PICKLE },
  ];
  const variants = ctx.variant ? plain.map((p) => ({ ...p, file: variantName(p.file, ctx.variant!), variant: true })) : [];
  return [...variants, ...plain.map((p) => ({ ...p, variant: false }))].map((c) => ({
    source: dir + c.file,
    local: flat ? c.local : dir + c.file,
    kind: c.kind,
    variant: c.variant,
  }));
}

/**
 * The first of `candidates` the repo has; null when it has none. `owner` names the model or
 * component in notes and errors.
 */
async function downloadWeights(
  ctx: Context,
  candidates: WeightsCandidate[],
  owner: string,
): Promise<{ file: Download; kind: WeightsKind; variant: boolean } | null> {
  for (const candidate of candidates) {
    let file: Download | null;
    if (candidate.kind === 'safetensors') {
      file = await download(ctx, candidate.source, candidate.local);
      if (!file) continue;
      checkSafetensors(ctx, file);
    } else {
      if (!(await exists(ctx, candidate.source))) continue;
      // A reader prefers a safetensors file when a folder has both: one left here would be read instead.
      const stale = candidates.filter((c) => c.kind === 'safetensors').map((c) => path.join(ctx.out, c.local)).find((p) =>
        fs.existsSync(p)
      );
      if (stale) {
        throw new FetchModelError(
          'conflict',
          `model ${ctx.id} has its weights as ${candidate.source} only, but ${stale} is already there and the engine would read that ` +
            'instead: delete it, or fetch into another --out folder',
        );
      }
      file = await download(ctx, candidate.source, candidate.local);
      if (!file) continue;
      checkTorchFile(ctx, file);
      const which = candidate.variant ? `${ctx.variant} safetensors weights` : 'safetensors weights';
      ctx.note(`${owner} has no ${which}: fetched the PyTorch pickle ${candidate.source} (read as data, never run)`);
    }
    if (ctx.variant && !candidate.variant) {
      const wanted = candidates.filter((c) => c.variant).map((c) => c.source);
      ctx.note(`${owner} has no ${ctx.variant} variant (${joinOr(wanted)}): fetched ${candidate.source} instead`);
    }
    const others = new Set(candidates.map((c) => path.join(ctx.out, c.local)).filter((p) => p !== file.dest && fs.existsSync(p)));
    for (const other of others) {
      ctx.note(
        candidate.kind === 'safetensors' && other.endsWith('.bin')
          ? `${other} is left from an earlier fetch; the engine reads the safetensors beside it`
          : `${other} is left from an earlier fetch, beside the ${file.dest} fetched now; delete it if it belongs to another model`,
      );
    }
    return { file, kind: candidate.kind, variant: candidate.variant };
  }
  return null;
}

/** `a`, `a or b`, `a, b or c`. */
function joinOr(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
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

/**
 * Streams one file into a temporary name in its destination folder (made when missing); null when
 * the repo lacks it. `progress: false`: nothing is reported (a file that may not be kept).
 */
async function download(ctx: Context, source: string, localName: string, { progress = true } = {}): Promise<Download | null> {
  const response = await request(ctx, source, 'GET');
  if (!response) return null;
  const onProgress = progress ? ctx.onProgress : () => {};
  const url = fileUrl(ctx, source);
  const encoding = response.headers.get('content-encoding');
  const length = response.headers.get('content-length');
  const total = length !== null && (!encoding || encoding === 'identity') ? Number(length) : undefined;
  const dest = path.join(ctx.out, localName);
  ensureDir(ctx, path.dirname(dest));
  const tmp = `${dest}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  ctx.pending.push(tmp);
  const file = await fs.promises.open(tmp, 'wx');
  let received = 0;
  try {
    onProgress({ file: source, received, total, done: false });
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
        onProgress({ file: source, received, total, done: false });
      }
    }
  } finally {
    await file.close();
  }
  if (total !== undefined && received !== total) {
    throw new FetchModelError('network', `network error: ${url} ended after ${received} of ${total} bytes`);
  }
  onProgress({ file: source, received, total: total ?? received, done: true });
  return { source, tmp, dest, bytes: received };
}

function checkJson(ctx: Context, file: Download): Record<string, unknown> {
  try {
    const value = JSON.parse(fs.readFileSync(file.tmp, 'utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch { /* reported below */ }
  throw new FetchModelError('invalid', `${fileUrl(ctx, file.source)} is not a JSON object (is the endpoint a Hugging Face Hub?)`);
}

function checkUnetConfig(ctx: Context, file: Download): void {
  const config = checkJson(ctx, file);
  const cls = config['_class_name'];
  if (typeof cls === 'string' && cls !== 'UNet2DModel') {
    ctx.note(`${file.source} describes a ${cls}, not a UNet2DModel; the engine may refuse it`);
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

/** Makes `dir` and any missing parents, remembering those it made for removal on failure. */
function ensureDir(ctx: Context, dir: string): void {
  const made: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) made.unshift(d);
  fs.mkdirSync(dir, { recursive: true });
  ctx.createdDirs.push(...made);
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: fetch-model <hub-id> [--out DIR] [--revision REV] [--endpoint URL] [--variant NAME]

Downloads a diffusers model into DIR. A UNet2DModel (config.json, diffusion_pytorch_model.safetensors,
or diffusion_pytorch_model.bin when the repo has no safetensors, and scheduler_config.json, from
the repo root or from unet/ + scheduler/) lands flat in DIR. A pipeline with a model_index.json
naming more (Stable Diffusion, LDM) keeps the hub's layout: model_index.json and the unet, vae or
vqvae, text_encoder, tokenizer and scheduler folders (not the safety checker and the like).
  --out DIR        destination folder (default: weights/<model name>)
  --revision REV   branch, tag, commit or refs/pr/N (default: main)
  --endpoint URL   hub address (default: $HF_ENDPOINT, else ${DEFAULT_ENDPOINT})
  --variant NAME   weights variant, e.g. fp16: <name>.fp16.safetensors where the repo has it
examples:
  npm run fetch-model -- google/ddpm-cifar10-32
  npm run fetch-model -- stable-diffusion-v1-5/stable-diffusion-v1-5 --variant fp16
  deno run -A scripts/fetch-model.ts google/ddpm-cifar10-32
  node scripts/node.mjs scripts/fetch-model.ts google/ddpm-cifar10-32 --out weights/cifar10`;

export interface CliOptions {
  id: string;
  out: string;
  endpoint: string;
  revision: string;
  /** Present only when --variant was given. */
  variant?: string;
}

/** Parses the command line; `help` when -h/--help was given. */
export function parseArgs(args: string[], env: (name: string) => string | undefined): CliOptions | 'help' {
  const named: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') return 'help';
    const m = /^--(out|revision|endpoint|variant)(?:=(.*))?$/.exec(arg);
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
  if (named.variant !== undefined && !VARIANT_PATTERN.test(named.variant)) {
    throw new FetchModelError('usage', `--variant ${named.variant} is not a name like fp16`);
  }
  return {
    id,
    out: named.out ?? path.join('weights', id.split('/').pop()!),
    endpoint: named.endpoint ?? (env('HF_ENDPOINT') || DEFAULT_ENDPOINT),
    revision: named.revision ?? DEFAULT_REVISION,
    ...(named.variant !== undefined ? { variant: named.variant } : {}),
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
  const variant = cli.variant ? `, variant ${cli.variant}` : '';
  runtime.write(`fetching ${cli.id} (revision ${cli.revision}${variant}) from ${cli.endpoint} into ${path.resolve(cli.out)}\n`);
  const started = Date.now();
  try {
    const model = await fetchModel({
      ...cli,
      signal: controller.signal,
      onProgress: progressPrinter(tty),
      onNote: (message) => runtime.write(`${tty ? '\r\x1b[2K' : ''}note: ${message}\n`),
    });
    const bytes = model.files.reduce((sum, f) => sum + f.bytes, 0);
    const layout = model.components ? `${MODEL_INDEX} + ${model.components.map((c) => c.name).join(', ')}` : `${model.layout} layout`;
    runtime.write(
      `done: ${model.files.length} files, ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
        `(${layout}) -> ${model.dir}\n`,
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
