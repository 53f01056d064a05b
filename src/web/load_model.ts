/**
 * Loads a diffusers UNet2DModel over HTTP(S) for `DdimPipeline.load`: the browser's counterpart of
 * reading a model folder from disk. Only `fetch` is used, so it also works in Deno and Node.
 *
 * A model folder is either a bare model (`config.json`, `diffusion_pytorch_model.safetensors`,
 * optionally `scheduler_config.json`, as `weights/emoji32/` and `scripts/fetch-model.ts` lay it
 * out) or a DDPMPipeline (`unet/config.json`, `unet/diffusion_pytorch_model.safetensors`,
 * optionally `scheduler/scheduler_config.json`, as many Hub repos do); where the safetensors file
 * is missing, `diffusion_pytorch_model.bin` (a PyTorch pickle, read without running it) is taken.
 * The layouts are those of `src/models/model_files.ts`.
 */
import { MODEL_INDEX, MODEL_LAYOUTS, type ModelFiles, modelFiles, readPipelineFolder } from '../models/model_files.ts';

export interface LoadModelOptions {
  /**
   * Called as each file downloads: bytes so far, the size the server announced (undefined when it
   * did not say, e.g. for a compressed response) and the file's path in the folder, such as
   * `diffusion_pytorch_model.safetensors` or `unet/config.json`.
   */
  onProgress?: (loaded: number, total: number | undefined, file: string) => void;
  /** The fetch to use (default `globalThis.fetch`): for caching, authentication or tests. */
  fetch?: typeof fetch;
  /** Cancels the downloads. */
  signal?: AbortSignal;
}

/** Why a model could not be loaded; the message names the URL and, for HTTP errors, the status. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  constructor(message: string, readonly url?: string, readonly status?: number) {
    super(message);
  }
}

/**
 * Fetches a model folder's files and returns them ready for `DdimPipeline.load`.
 *
 * `url` is the folder, absolute or relative to the page (`'/weights/emoji32/'`,
 * `'https://huggingface.co/google/ddpm-cifar10-32/resolve/main'`); a missing trailing slash is
 * added. The layout is found by asking for `config.json`, then `unet/config.json`. A missing
 * scheduler config (HTTP 404) is not an error: the pipeline then uses DDPM's linear schedule.
 *
 * ```ts
 * const gpu = await requestGpu();
 * const files = await loadModel('/weights/emoji32/', { onProgress: (n, total, file) => console.log(file, n, total) });
 * const pipeline = await DdimPipeline.load(gpu, files);
 * ```
 *
 * @throws ModelLoadError when a file is missing, a request fails, or a JSON file does not parse.
 */
export async function loadModel(url: string | URL, options: LoadModelOptions = {}): Promise<ModelFiles> {
  const folder = folderUrl(url);
  const fetchFn = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!fetchFn) throw new ModelLoadError('this runtime has no fetch(); pass one as options.fetch');
  const get = (file: string, optional = false) => download(fetchFn, folder, file, optional, options);

  // A bare model's config.json first (the common case, and no 404 in the page's console for it),
  // then a pipeline folder's model_index.json (LDMPipeline, ...), then a pipeline's unet/ alone.
  const [flat, unetOnly] = MODEL_LAYOUTS;
  let layout: (typeof MODEL_LAYOUTS)[number] | undefined;
  let configBytes = await get(flat.config, true);
  if (configBytes) layout = flat;
  else {
    const index = await get(MODEL_INDEX, true);
    if (index) {
      const reader = {
        read: (path: string) => path === MODEL_INDEX ? Promise.resolve(index) : get(path, true),
        where: (path: string) => new URL(path, folder).href,
        fail: (message: string) => new ModelLoadError(message, folder.href),
      };
      return (await readPipelineFolder(reader)).files;
    }
    configBytes = await get(unetOnly.config, true);
    if (configBytes) layout = unetOnly;
  }
  if (!layout || !configBytes) {
    const tried = [flat.config, MODEL_INDEX, unetOnly.config].map((file) => new URL(file, folder).href).join(' nor ');
    throw new ModelLoadError(`no model at ${folder.href}: neither ${tried} exists (HTTP 404)`, folder.href, 404);
  }
  const config = parseJson(configBytes, new URL(layout.config, folder).href);
  let weights: Uint8Array | undefined;
  for (const file of layout.weights) {
    weights = await get(file, true);
    if (weights) break;
  }
  if (!weights) {
    const tried = layout.weights.map((file) => new URL(file, folder).href).join(' nor ');
    throw new ModelLoadError(`no weights at ${folder.href}: neither ${tried} exists (HTTP 404)`, folder.href, 404);
  }
  const schedulerBytes = await get(layout.scheduler, true);
  const schedulerConfig = schedulerBytes ? parseJson(schedulerBytes, new URL(layout.scheduler, folder).href) : undefined;
  try {
    return await modelFiles(config, weights, schedulerConfig);
  } catch (e) {
    throw new ModelLoadError(`the weights at ${folder.href} cannot be read: ${(e as Error).message}`, folder.href);
  }
}

/** The folder URL with a trailing slash, resolved against the page when relative. */
function folderUrl(url: string | URL): URL {
  let folder: URL;
  try {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    folder = new URL(url, base);
  } catch {
    throw new ModelLoadError(`'${url}' is not a URL (outside a web page, give an absolute URL such as http://host/models/emoji32/)`);
  }
  if (!folder.pathname.endsWith('/')) folder.pathname += '/';
  return folder;
}

/**
 * Downloads one file, streaming it so progress can be reported. Resolves undefined for a missing
 * optional file (HTTP 404).
 */
async function download(
  fetchFn: typeof fetch,
  folder: URL,
  file: string,
  optional: boolean,
  options: LoadModelOptions,
): Promise<Uint8Array | undefined> {
  const href = new URL(file, folder).href;
  let response: Response;
  try {
    response = await fetchFn(href, { signal: options.signal });
  } catch (e) {
    if (options.signal?.aborted) throw new ModelLoadError(`download of ${href} was cancelled`, href);
    throw new ModelLoadError(`could not fetch ${href}: ${(e as Error).message}`, href);
  }
  if (response.status === 404 && optional) {
    await response.body?.cancel();
    return undefined;
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new ModelLoadError(
      `GET ${href} failed: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
      href,
      response.status,
    );
  }
  // Content-Length counts the compressed bytes when the server compressed the body.
  const length = Number(response.headers.get('content-length') ?? NaN);
  const compressed = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = Number.isSafeInteger(length) && length >= 0 && !compressed ? length : undefined;
  options.onProgress?.(0, total, file);
  const bytes = await readBody(response, total, (loaded) => options.onProgress?.(loaded, total, file), href);
  if (total !== undefined && bytes.length !== total) {
    throw new ModelLoadError(`${href} was cut short: ${bytes.length} of ${total} bytes arrived`, href);
  }
  options.onProgress?.(bytes.length, total ?? bytes.length, file);
  return bytes;
}

/** Reads a body chunk by chunk into one array (preallocated when the size is known). */
async function readBody(
  response: Response,
  total: number | undefined,
  progress: (loaded: number) => void,
  href: string,
): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  let buffer = new Uint8Array(total ?? 1 << 16);
  let loaded = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buffer.length) {
        if (total !== undefined) throw new ModelLoadError(`${href} sent more than the ${total} bytes it announced`, href);
        const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length));
        grown.set(buffer.subarray(0, loaded));
        buffer = grown;
      }
      buffer.set(value, loaded);
      loaded += value.length;
      progress(loaded);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`download of ${href} failed after ${loaded} bytes: ${(e as Error).message}`, href);
  } finally {
    reader.releaseLock();
  }
  return loaded === buffer.length ? buffer : buffer.slice(0, loaded);
}

function parseJson(bytes: Uint8Array, href: string): unknown {
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text);
  } catch (e) {
    const start = text.trimStart().slice(0, 40).replace(/\s+/g, ' ');
    throw new ModelLoadError(`${href} is not JSON (${(e as Error).message}); it begins "${start}"`, href);
  }
}
