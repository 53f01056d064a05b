/**
 * The demo page (web/index.html): loads a model (the default emoji model, or `?model=<folder URL>`,
 * which the page's model field sets), then samples, interpolates between seeds, and encodes and
 * decodes an image the user picks. A pipeline folder with an autoencoder (an LDMPipeline's vqvae/,
 * a vae/) is a latent model: DDIM runs on its latents and the page shows the decoded images.
 * Control values can be preset from the URL (`?n=4&steps=20&eta=0&spacing=quad&seed=7`, `sigmaHat=1`,
 * `class=3` for a class-conditional model, whose class picker shows only then); `run=1`
 * samples once the model is ready.
 *
 * `document.body.dataset.state` says where the page is (loading, ready, busy, failed) and each
 * canvas counts its finished runs in `data-runs`: the browser test waits on these.
 */
import {
  type DdimModel,
  DdimPipeline,
  type Gpu,
  gridRgba,
  LatentDiffusionPipeline,
  loadModel,
  type ModelFiles,
  readModel,
  requestGpu,
  rgbaToTensor,
  type StepProgress,
  type TimestepSpacing,
} from '../src/index.ts';

const params = new URLSearchParams(location.search);
const DEFAULT_MODEL_URL = 'weights/emoji32/';
const MODEL_URL = params.get('model')?.trim() || DEFAULT_MODEL_URL;
/** Each image is drawn at least this many pixels wide (integer upscaling). */
const IMAGE_PIXELS = 96;
/** Pipelines compiled for different batch sizes that are kept; each holds a copy of the weights. */
const KEPT_PIPELINES = 2;

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
};
const statusLine = element<HTMLDivElement>('status');
const progressBar = element<HTMLProgressElement>('progress');
const fatalBox = element<HTMLDivElement>('fatal');
const actionButtons = ['sample', 'interpolate', 'roundtrip'].map((id) => element<HTMLButtonElement>(id));
const stopButton = element<HTMLButtonElement>('stop');

type PageState = 'loading' | 'ready' | 'busy' | 'failed';
function setState(state: PageState): void {
  document.body.dataset.state = state;
  // While busy, pressing an action again cancels the running one and starts anew.
  for (const button of actionButtons) button.disabled = state !== 'ready' && state !== 'busy';
  stopButton.disabled = state !== 'busy';
}

const currentState = () => document.body.dataset.state as PageState;

function setStatus(text: string, progress?: number): void {
  statusLine.textContent = text;
  progressBar.hidden = progress === undefined;
  if (progress !== undefined) progressBar.value = progress;
}

/** A problem that stops the page: no WebGPU, no adapter, the model did not load, device lost. */
function fail(title: string, detail: string): void {
  fatalBox.replaceChildren();
  const heading = document.createElement('strong');
  heading.textContent = title;
  fatalBox.append(heading, detail);
  fatalBox.hidden = false;
  setStatus(title);
  setState('failed');
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message;
}

const megabytes = (bytes: number) => (bytes / 1e6).toFixed(1);

// ---------------------------------------------------------------------------------------------
// Start: WebGPU, the model, a first pipeline.

let gpu: Gpu;
let files: ModelFiles;
/** Read once; its weights are uploaded once and shared by the pipelines of every batch size. */
let model: DdimModel;
/** A pixel model's pipeline, or a latent model's: DDIM on the autoencoder's latents, then its decoder. */
type Pipeline = DdimPipeline | LatentDiffusionPipeline;
const pipelines = new Map<number, Pipeline>();

const isLatent = (pipeline: Pipeline): pipeline is LatentDiffusionPipeline => pipeline instanceof LatentDiffusionPipeline;
/** The DDIM pipeline of the UNet: its schedule and config. */
const ddimOf = (pipeline: Pipeline): DdimPipeline => isLatent(pipeline) ? pipeline.ddim : pipeline;

/** The model compiled for `batch` images per forward (compiling takes a moment; a few are kept). */
async function pipelineFor(batch: number): Promise<Pipeline> {
  let pipeline = pipelines.get(batch);
  if (pipeline) {
    pipelines.delete(batch); // re-inserted below as the most recently used
  } else {
    setStatus(`Compiling the UNet for ${batch} image${batch === 1 ? '' : 's'} at a time…`);
    pipeline = model.autoencoder
      ? await LatentDiffusionPipeline.load(gpu, model, { batch })
      : await DdimPipeline.load(gpu, model, { batch });
  }
  pipelines.set(batch, pipeline);
  while (pipelines.size > KEPT_PIPELINES) {
    const [oldest, old] = pipelines.entries().next().value!;
    old.destroy();
    pipelines.delete(oldest);
  }
  return pipeline;
}

async function start(): Promise<void> {
  setState('loading');
  if (!('gpu' in navigator) || !navigator.gpu) {
    const why = globalThis.isSecureContext
      ? 'This browser has no WebGPU (navigator.gpu is undefined). Use a recent Chrome or Edge (113 or later), ' +
        'Safari 26, or Firefox 141 on Windows; on Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu ' +
        '(headless Chromium: --enable-unsafe-webgpu).'
      : `WebGPU is only offered to secure pages, and ${location.origin} is not one: open the demo over https, ` +
        'or from localhost / 127.0.0.1 (npm run demo).';
    fail('No WebGPU here', why);
    return;
  }
  setStatus('Asking for a GPU adapter…');
  try {
    gpu = await requestGpu();
  } catch (e) {
    fail('No usable GPU', describeError(e));
    return;
  }
  gpu.lost.then((message) => fail('The GPU device was lost', `${message}\nReload the page to start again.`));

  try {
    files = await loadModel(MODEL_URL, {
      onProgress: (loaded, total, file) => {
        const size = total === undefined ? `${megabytes(loaded)} MB` : `${megabytes(loaded)} / ${megabytes(total)} MB`;
        setStatus(`Downloading ${file}: ${size}`, total ? loaded / total : undefined);
      },
    });
  } catch (e) {
    fail('The model did not load', describeError(e));
    return;
  }
  try {
    model = readModel(files);
  } catch (e) {
    fail('The model cannot be read', describeError(e));
    return;
  }
  let firstBatch = 1;
  try {
    firstBatch = readInt('n', 1, 16);
  } catch {
    // a bad ?n= is reported when Sample is pressed
  }
  try {
    await pipelineFor(firstBatch);
  } catch (e) {
    // GraphLimitError names the adapter limit the model needs more of.
    fail(`This adapter cannot run the model (${gpu.adapterName})`, describeError(e));
    return;
  }
  const pipeline = pipelines.values().next().value!;
  const ddim = ddimOf(pipeline);
  const [c, h, w] = pipeline.imageShape;
  const modelUrl = new URL(MODEL_URL, location.href).href;
  const unetParameters = parameterCount(model.unet.file.tensors.values());
  const weightBytes = files.weights.length + (files.autoencoder?.weights.length ?? 0);
  if (isLatent(pipeline)) {
    const [lc, lh, lw] = pipeline.latentShape;
    const autoencoder = pipeline.autoencoder.config.className;
    element('model-line').textContent =
      `Model: ${modelUrl} · latent: ${w}×${h} images, ${c} channels, from ${lc}×${lh}×${lw} latents of a ${autoencoder} · ` +
      `${(unetParameters / 1e6).toFixed(2)} M UNet + ${(parameterCount(model.autoencoder!.file.tensors.values()) / 1e6).toFixed(2)} M ` +
      `${autoencoder} parameters · ${megabytes(weightBytes)} MB of weights. GPU: ${gpu.adapterName}.`;
    const note = element('latent-note');
    note.textContent = `A latent model: DDIM runs on the ${autoencoder}'s ${lc}×${lh}×${lw} latents, and the images appear when the ` +
      "last step's latents are decoded (the steps are counted, not previewed).";
    note.hidden = false;
    element('sample-about').hidden = true;
  } else {
    element('model-line').textContent =
      `Model: ${modelUrl} · ${w}×${h}, ${c} channels · ${(unetParameters / 1e6).toFixed(2)} M parameters · ` +
      `${megabytes(weightBytes)} MB of weights. GPU: ${gpu.adapterName}.`;
  }
  setupClassPicker(ddim);
  if (params.get('spacing') === null && ddim.schedule.timestepSpacing) {
    element<HTMLSelectElement>('spacing').value = ddim.schedule.timestepSpacing;
  }
  drawPlaceholders(pipeline.imageShape, isLatent(pipeline) ? pipeline.latentShape : pipeline.imageShape);
  setStatus(`Ready on ${gpu.adapterName}.`);
  setState('ready');
  if (params.get('run') === '1') element<HTMLFormElement>('sample-form').requestSubmit();
}

function parameterCount(tensors: Iterable<{ shape: readonly number[] }>): number {
  let count = 0;
  for (const entry of tensors) count += entry.shape.reduce((a, b) => a * b, 1);
  return count;
}

/** The class picker, shown only for a class-conditional model: its classes (or labels 0..999 for 'timestep' ones). */
function setupClassPicker(pipeline: DdimPipeline): void {
  const config = pipeline.model.unet.config;
  if (!config.classEmbedType) return;
  const select = element<HTMLSelectElement>('class');
  const count = config.classEmbedType === 'embedding' ? config.numClassEmbeds! : 1000;
  select.replaceChildren(...Array.from({ length: count }, (_, k) => new Option(String(k), String(k))));
  const preset = params.get('class');
  if (preset !== null && Number(preset) >= 0 && Number(preset) < count) select.value = preset;
  element('class-label').hidden = false;
}

/** The picked class, for a class-conditional model; undefined for any other. */
function classLabels(pipeline: Pipeline): number[] | undefined {
  return ddimOf(pipeline).model.unet.config.classEmbedType ? [Number(element<HTMLSelectElement>('class').value)] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading the controls.

/** The words of the control's label, for messages: "steps", "seed A". */
const labelOf = (input: HTMLElement) => input.closest('label')?.firstChild?.textContent?.trim() || input.id;

function readInt(id: string, min: number, max: number): number {
  const input = element<HTMLInputElement>(id);
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${labelOf(input)} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function readNumber(id: string, min: number, max: number): number {
  const input = element<HTMLInputElement>(id);
  const value = Number(input.value);
  if (input.value.trim() === '' || !(value >= min && value <= max)) {
    throw new RangeError(`${labelOf(input)} must be a number from ${min} to ${max}`);
  }
  return value;
}

/** Presets controls from the page's URL (?n=4&steps=20&...). */
function presetControls(): void {
  const names: Record<string, string> = { n: 'n', steps: 'steps', eta: 'eta', spacing: 'spacing', seed: 'seed' };
  if (params.get('sigmaHat') === '1') element<HTMLInputElement>('sigma-hat').checked = true;
  for (const [param, id] of Object.entries(names)) {
    const value = params.get(param);
    if (value !== null) element<HTMLInputElement | HTMLSelectElement>(id).value = value;
  }
}

// ---------------------------------------------------------------------------------------------
// Drawing.

/** Draws images [n, C, H, W] (model space) as a grid on a canvas; of more than 3 channels (latents), the first 3. */
function drawImages(canvas: HTMLCanvasElement, x: Float32Array, n: number, columns: number, shape: [number, number, number]): void {
  let [c, h, w] = shape;
  if (c > 3) {
    x = firstChannels(x, n, c, 3, h * w);
    c = 3;
  }
  const scale = Math.max(1, Math.floor(IMAGE_PIXELS / w));
  const { rgba, width, height } = gridRgba(x, n, c, h, w, { columns, padding: 2, scale });
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  canvas.getContext('2d')!.putImageData(
    new ImageData(new Uint8ClampedArray(rgba.buffer as ArrayBuffer, rgba.byteOffset, rgba.length), width, height),
    0,
    0,
  );
}

function firstChannels(x: Float32Array, n: number, c: number, keep: number, plane: number): Float32Array {
  const kept = new Float32Array(n * keep * plane);
  for (let i = 0; i < n; i++) kept.set(x.subarray(i * c * plane, (i * c + keep) * plane), i * keep * plane);
  return kept;
}

/** Light grey squares where each action's images will appear (`latentShape`: the round trip's x_T). */
function drawPlaceholders(shape: [number, number, number], latentShape: [number, number, number]): void {
  const blank = (n: number) => new Float32Array(n * shape[0] * shape[1] * shape[2]).fill(0.85);
  const n = Math.max(1, Math.min(16, Number(element<HTMLInputElement>('n').value) || 1));
  const frames = Math.max(2, Math.min(16, Number(element<HTMLInputElement>('frames').value) || 2));
  drawImages(element('samples'), blank(n), n, Math.min(n, 8), shape);
  drawImages(element('strip'), blank(frames), frames, frames, shape);
  for (const id of ['roundtrip-input', 'roundtrip-output']) drawImages(element(id), blank(1), 1, 1, shape);
  drawImages(element('roundtrip-latent'), new Float32Array(latentShape[0] * latentShape[1] * latentShape[2]).fill(0.85), 1, 1, latentShape);
}

function countRun(canvas: HTMLCanvasElement): void {
  canvas.dataset.runs = String(Number(canvas.dataset.runs ?? 0) + 1);
}

/** A step callback that draws each x0 prediction into `images` (all images of the run) and the canvas. */
function previewer(
  canvas: HTMLCanvasElement,
  images: Float32Array,
  n: number,
  columns: number,
  shape: [number, number, number],
  info: HTMLElement,
  label: string,
) {
  const perImage = shape[0] * shape[1] * shape[2];
  return (progress: StepProgress) => {
    images.set(progress.x0!, progress.firstImage * perImage);
    drawImages(canvas, images, n, columns, shape);
    canvas.dataset.step = `${progress.step}/${progress.total}`;
    info.textContent = `${label}: step ${progress.step} of ${progress.total}, t = ${progress.t}`;
  };
}

/**
 * The step callback of a pipeline: a pixel model's draws each x0 prediction (see previewer); a
 * latent model's predictions are latents, so its steps are only counted.
 */
function stepReporter(
  pipeline: Pipeline,
  canvas: HTMLCanvasElement,
  images: Float32Array,
  n: number,
  columns: number,
  info: HTMLElement,
  label: string,
): Pick<StepOptions, 'previewX0' | 'onStep'> {
  if (!isLatent(pipeline)) return { previewX0: true, onStep: previewer(canvas, images, n, columns, pipeline.imageShape, info, label) };
  return {
    onStep: (progress: StepProgress) => {
      canvas.dataset.step = `${progress.step}/${progress.total}`;
      const decoding = progress.step === progress.total ? ', then decoding the latents' : '';
      info.textContent = `${label}: step ${progress.step} of ${progress.total}, t = ${progress.t}${decoding}`;
    },
  };
}

type StepOptions = { previewX0?: boolean; onStep?: (progress: StepProgress) => void };

/** The images of a result: a latent model's decoded images, a pixel model's x0. */
const imagesOf = (result: { x0: Float32Array } | { images: Float32Array }) => 'images' in result ? result.images : result.x0;

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);

// ---------------------------------------------------------------------------------------------
// The three actions. One runs at a time: Stop, or pressing an action while one runs, aborts the
// running one between two steps. An error is shown and the page stays usable.

let running: { controller: AbortController; finished: Promise<void> } | undefined;

const isAbort = (e: unknown) => e instanceof Error && e.name === 'AbortError';

async function runAction(name: string, action: (signal: AbortSignal) => Promise<string>): Promise<void> {
  const state = currentState();
  if (state !== 'ready' && state !== 'busy') return;
  if (running) {
    running.controller.abort();
    await running.finished;
  }
  const controller = new AbortController();
  setState('busy');
  const finished = action(controller.signal).then(
    (summary) => setStatus(summary),
    (e) => setStatus(isAbort(e) ? `${name} stopped.` : `${name} failed: ${describeError(e)}`),
  );
  running = { controller, finished };
  await finished;
  if (running?.controller !== controller) return; // a newer action took over
  running = undefined;
  if (currentState() === 'busy') setState('ready'); // not after a failure (device lost)
}

stopButton.addEventListener('click', () => running?.controller.abort());

async function sample(signal: AbortSignal): Promise<string> {
  const n = readInt('n', 1, 16);
  const steps = readInt('steps', 1, 1000);
  const sigmaHat = element<HTMLInputElement>('sigma-hat').checked;
  const eta = sigmaHat ? 0 : readNumber('eta', 0, 1);
  const spacing = element<HTMLSelectElement>('spacing').value as TimestepSpacing;
  const seed = readInt('seed', 0, 2 ** 53 - 1);
  const pipeline = await pipelineFor(n);
  const shape = pipeline.imageShape;
  const canvas = element<HTMLCanvasElement>('samples');
  const info = element('sample-info');
  const columns = Math.min(n, 8);
  const images = new Float32Array(n * shape[0] * shape[1] * shape[2]); // grey until the first step
  drawImages(canvas, images, n, columns, shape);
  setStatus(`Sampling ${n} image${n === 1 ? '' : 's'}…`);
  const started = performance.now();
  const labels = classLabels(pipeline);
  const result = await pipeline.sample({
    steps,
    eta,
    sigmaHat,
    spacing,
    classLabels: labels,
    seed,
    count: n,
    ...stepReporter(pipeline, canvas, images, n, columns, info, 'sampling'),
    signal,
  });
  drawImages(canvas, imagesOf(result), n, columns, shape);
  const took = seconds(started);
  info.textContent = `${n} image${n === 1 ? '' : 's'} · ${result.timesteps.length} steps (${spacing}) · ${sigmaHat ? 'σ̂' : `η = ${eta}`}${
    labels ? ` · class ${labels[0]}` : ''
  } · seed ${seed} · ${took} s`;
  countRun(canvas);
  return `Sampled ${n} image${n === 1 ? '' : 's'} in ${took} s on ${gpu.adapterName}.`;
}

async function interpolate(signal: AbortSignal): Promise<string> {
  const seedA = readInt('seed-a', 0, 2 ** 53 - 1);
  const seedB = readInt('seed-b', 0, 2 ** 53 - 1);
  const frames = readInt('frames', 2, 16);
  const steps = readInt('interpolate-steps', 1, 1000);
  const pipeline = await pipelineFor(frames);
  const shape = pipeline.imageShape;
  const canvas = element<HTMLCanvasElement>('strip');
  const info = element('interpolate-info');
  const images = new Float32Array(frames * shape[0] * shape[1] * shape[2]);
  drawImages(canvas, images, frames, frames, shape);
  setStatus(`Interpolating from seed ${seedA} to seed ${seedB}…`);
  const started = performance.now();
  const result = await pipeline.interpolate({
    seedA,
    seedB,
    frames,
    steps,
    classLabels: classLabels(pipeline),
    ...stepReporter(pipeline, canvas, images, frames, frames, info, 'decoding'),
    signal,
  });
  drawImages(canvas, imagesOf(result), frames, frames, shape);
  const took = seconds(started);
  info.textContent = `seed ${seedA} → seed ${seedB} · ${frames} frames · ${result.timesteps.length} steps · ${took} s`;
  countRun(canvas);
  return `Interpolated ${frames} frames in ${took} s.`;
}

/** The picked image, fitted inside the model's size on white (the emoji's background), in model space. */
async function pickedImage(shape: [number, number, number]): Promise<Float32Array> {
  const file = element<HTMLInputElement>('image-file').files?.[0];
  if (!file) throw new Error('pick an image file first');
  const [c, h, w] = shape;
  if (c !== 3) throw new Error(`this model takes ${c}-channel images; the page handles RGB models only`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${file.name} is not an image this browser can decode`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext('2d', { willReadFrequently: true })!;
  context.fillStyle = '#fff';
  context.fillRect(0, 0, w, h);
  const fit = Math.min(w / bitmap.width, h / bitmap.height);
  const dw = bitmap.width * fit;
  const dh = bitmap.height * fit;
  context.imageSmoothingQuality = 'high';
  context.drawImage(bitmap, (w - dw) / 2, (h - dh) / 2, dw, dh);
  bitmap.close();
  const { data } = context.getImageData(0, 0, w, h);
  return rgbaToTensor(new Uint8Array(data.buffer, data.byteOffset, data.length), w, h);
}

async function roundtrip(signal: AbortSignal): Promise<string> {
  const steps = readInt('roundtrip-steps', 1, 1000);
  const pipeline = await pipelineFor(1);
  const shape = pipeline.imageShape;
  const image = await pickedImage(shape);
  const info = element('roundtrip-info');
  const output = element<HTMLCanvasElement>('roundtrip-output');
  drawImages(element('roundtrip-input'), image, 1, 1, shape);
  setStatus(`Encoding with ${steps} steps, then decoding…`);
  const started = performance.now();
  const labels = classLabels(pipeline);
  const ddim = ddimOf(pipeline);
  const encodeOptions = {
    steps,
    classLabels: labels,
    onStep: (p: StepProgress) => void (info.textContent = `encoding: step ${p.step} of ${p.total}, t = ${p.t}`),
    signal,
  };
  // A latent model encodes the image with its autoencoder first, and decodes x_0's latents at the end.
  const encoded = isLatent(pipeline)
    ? await pipeline.encode({ images: image }, encodeOptions)
    : await pipeline.encode(image, encodeOptions);
  drawImages(element('roundtrip-latent'), encoded.x0, 1, 1, ddim.imageShape);
  const decoded = await ddim.decode(encoded.x0, {
    steps,
    classLabels: labels,
    ...stepReporter(pipeline, output, new Float32Array(image.length), 1, 1, info, 'decoding'),
    signal,
  });
  signal.throwIfAborted();
  const decodedImage = isLatent(pipeline) ? (await pipeline.decodeLatents(decoded.x0)).images : decoded.x0;
  drawImages(output, decodedImage, 1, 1, shape);
  let squared = 0;
  for (let i = 0; i < image.length; i++) squared += (decodedImage[i] - image[i]) ** 2;
  const mse = squared / image.length;
  // PSNR over model space, whose range [-1, 1] has width 2.
  const psnr = 10 * Math.log10(4 / mse);
  const took = seconds(started);
  info.textContent = `${steps} steps each way · reconstruction MSE ${mse.toExponential(2)} (PSNR ${psnr.toFixed(1)} dB) · ${took} s`;
  output.dataset.mse = String(mse);
  countRun(output);
  return `Encoded and decoded in ${took} s.`;
}

// ---------------------------------------------------------------------------------------------

/** The model field: loading another folder reloads the page with ?model=<URL> (the other settings kept). */
function setupModelPicker(): void {
  const input = element<HTMLInputElement>('model-url');
  input.value = MODEL_URL;
  element<HTMLFormElement>('model-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URL(location.href);
    const url = input.value.trim();
    if (url === '' || url === DEFAULT_MODEL_URL) next.searchParams.delete('model');
    else next.searchParams.set('model', url);
    next.searchParams.delete('run');
    location.assign(next.href);
  });
}

function onSubmit(formId: string, name: string, action: (signal: AbortSignal) => Promise<string>): void {
  element<HTMLFormElement>(formId).addEventListener('submit', (event) => {
    event.preventDefault();
    void runAction(name, action);
  });
}

onSubmit('sample-form', 'Sampling', sample);
setupModelPicker();
onSubmit('interpolate-form', 'Interpolation', interpolate);
onSubmit('roundtrip-form', 'Encoding', roundtrip);
element('dice').addEventListener('click', () => {
  element<HTMLInputElement>('seed').value = String(Math.floor(Math.random() * 1e6));
});
presetControls();
start().catch((e) => fail('The page failed to start', describeError(e)));
