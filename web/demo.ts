/**
 * The demo page (web/index.html): loads a model (the default emoji model, or `?model=<folder URL>`,
 * which the page's model field sets), then samples, interpolates between seeds, and encodes and
 * decodes an image the user picks. A pipeline folder with an autoencoder (an LDMPipeline's vqvae/,
 * a vae/) is a latent model: DDIM runs on its latents and the page shows the decoded images. A
 * folder with a text encoder (a StableDiffusionPipeline's) is a text-to-image model: the page asks
 * for a prompt, a negative prompt and the guidance scale, previews each step's x0 prediction with a
 * linear map of the latents to RGB (web/latent_preview.ts) and shows the decoded images at the end.
 * Control values can be preset from the URL (`?n=4&steps=20&eta=0&spacing=quad&seed=7`, `sigmaHat=1`,
 * `class=3` for a class-conditional model, whose class picker shows only then; `prompt=…`,
 * `negative=…`, `guidance=5` for a text-to-image model); `run=1` samples once the model is ready.
 *
 * `document.body.dataset.state` says where the page is (loading, ready, busy, failed) and each
 * canvas counts its finished runs in `data-runs`; `data-view` says what a canvas shows (`x0` a pixel
 * model's prediction, `latent-preview`, `decoded`): the browser test waits on these.
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
  readTextToImageModel,
  requestGpu,
  rgbaToTensor,
  StableDiffusionPipeline,
  type StepProgress,
  type TextToImageModel,
  type TextToImageResult,
  type TimestepSpacing,
} from '../src/index.ts';
import { latentPreview } from './latent_preview.ts';

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
let model: { kind: 'unconditional'; read: DdimModel } | { kind: 'text-to-image'; read: TextToImageModel };
/**
 * A pixel model's pipeline, a latent model's (DDIM on the autoencoder's latents, then its decoder),
 * or a text-to-image model's (prompts, DDIM under guidance on the VAE's latents, then the VAE).
 */
type Pipeline = DdimPipeline | LatentDiffusionPipeline | StableDiffusionPipeline;
type UnconditionalPipeline = DdimPipeline | LatentDiffusionPipeline;
const pipelines = new Map<number, Pipeline>();

const isLatent = (pipeline: Pipeline): pipeline is LatentDiffusionPipeline => pipeline instanceof LatentDiffusionPipeline;
const isTextToImage = (pipeline: Pipeline): pipeline is StableDiffusionPipeline => pipeline instanceof StableDiffusionPipeline;
/** The DDIM pipeline of the UNet: its schedule and config. */
const ddimOf = (pipeline: UnconditionalPipeline): DdimPipeline => isLatent(pipeline) ? pipeline.ddim : pipeline;
const scheduleOf = (pipeline: Pipeline): { timestepSpacing?: TimestepSpacing } =>
  isTextToImage(pipeline) ? pipeline.schedule : ddimOf(pipeline).schedule;

/**
 * The model compiled for `batch` images per forward (compiling takes a moment; a few are kept).
 * A text-to-image model makes its images one at a time: its UNet runs on [negative, positive]
 * already, and a Stable Diffusion UNet's attention over 64×64 latents is large enough at batch 2.
 */
async function pipelineFor(wanted: number): Promise<Pipeline> {
  const batch = model.kind === 'text-to-image' ? 1 : wanted;
  let pipeline = pipelines.get(batch);
  if (pipeline) {
    pipelines.delete(batch); // re-inserted below as the most recently used
  } else if (model.kind === 'text-to-image') {
    setStatus('Compiling the text encoder, the UNet and the VAE…');
    pipeline = await StableDiffusionPipeline.load(gpu, model.read, { batch });
  } else {
    setStatus(`Compiling the UNet for ${batch} image${batch === 1 ? '' : 's'} at a time…`);
    const read = model.read;
    pipeline = read.autoencoder ? await LatentDiffusionPipeline.load(gpu, read, { batch }) : await DdimPipeline.load(gpu, read, { batch });
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
    model = files.textEncoder
      ? { kind: 'text-to-image', read: readTextToImageModel(files) }
      : { kind: 'unconditional', read: readModel(files) };
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
  const [c, h, w] = pipeline.imageShape;
  const modelUrl = new URL(MODEL_URL, location.href).href;
  const unetParameters = parameterCount(model.read.unet.file.tensors.values());
  const weightBytes = files.weights.length + (files.autoencoder?.weights.length ?? 0) + (files.textEncoder?.weights.length ?? 0);
  if (isTextToImage(pipeline)) {
    const [lc, lh, lw] = pipeline.latentShape;
    const { textEncoder, autoencoder } = pipeline.model;
    const millions = (tensors: Iterable<{ shape: readonly number[] }>) => (parameterCount(tensors) / 1e6).toFixed(2);
    element('model-line').textContent =
      `Model: ${modelUrl} · text-to-image: ${w}×${h} images from ${lc}×${lh}×${lw} latents of an AutoencoderKL · ` +
      `${millions(textEncoder.file.tensors.values())} M text encoder + ${(unetParameters / 1e6).toFixed(2)} M UNet + ` +
      `${millions(autoencoder.file.tensors.values())} M VAE parameters · ${megabytes(weightBytes)} MB of weights. GPU: ${gpu.adapterName}.`;
    const note = element('latent-note');
    note.textContent = `A text-to-image model: DDIM runs on the VAE's ${lc}×${lh}×${lw} latents under classifier-free guidance, ` +
      "one image after another. Each step's prediction is previewed from its latents mapped linearly to RGB (soft, colours " +
      "approximate); the images appear when the last step's latents are decoded.";
    note.hidden = false;
    element('sample-about').hidden = true;
    for (const id of ['prompt-label', 'negative-label', 'guidance-label', 'interpolate-prompt-note', 'roundtrip-prompt-note']) {
      element(id).hidden = false;
    }
    // One image at a time (see pipelineFor): a single image unless the URL asks for more.
    if (params.get('n') === null) element<HTMLInputElement>('n').value = '1';
  } else if (isLatent(pipeline)) {
    const [lc, lh, lw] = pipeline.latentShape;
    const autoencoder = pipeline.autoencoder.config.className;
    element('model-line').textContent =
      `Model: ${modelUrl} · latent: ${w}×${h} images, ${c} channels, from ${lc}×${lh}×${lw} latents of a ${autoencoder} · ` +
      `${(unetParameters / 1e6).toFixed(2)} M UNet + ${
        (parameterCount(pipeline.ddim.model.autoencoder!.file.tensors.values()) / 1e6).toFixed(2)
      } M ` +
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
  if (!isTextToImage(pipeline)) setupClassPicker(ddimOf(pipeline));
  const spacing = scheduleOf(pipeline).timestepSpacing;
  if (params.get('spacing') === null && spacing) element<HTMLSelectElement>('spacing').value = spacing;
  drawPlaceholders(pipeline.imageShape, isLatent(pipeline) || isTextToImage(pipeline) ? pipeline.latentShape : pipeline.imageShape);
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
function classLabels(pipeline: UnconditionalPipeline): number[] | undefined {
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
  const names: Record<string, string> = {
    n: 'n',
    steps: 'steps',
    eta: 'eta',
    spacing: 'spacing',
    seed: 'seed',
    prompt: 'prompt',
    negative: 'negative-prompt',
    guidance: 'guidance',
  };
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
 * A text-to-image model's step callback: each x0 prediction (latents) mapped to RGB on the CPU and
 * upsampled to the image's size (web/latent_preview.ts), drawn into `images` and the canvas.
 * Images are made one at a time, so the step count names the image too.
 */
function latentPreviewer(
  pipeline: StableDiffusionPipeline,
  canvas: HTMLCanvasElement,
  images: Float32Array,
  n: number,
  columns: number,
  info: HTMLElement,
  label: string,
) {
  const [, height, width] = pipeline.imageShape;
  const [c, h, w] = pipeline.latentShape;
  return (progress: StepProgress) => {
    const x0 = progress.x0!;
    const preview = latentPreview(x0, x0.length / (c * h * w), pipeline.latentShape, [height, width]);
    images.set(preview, progress.firstImage * 3 * height * width);
    drawImages(canvas, images, n, columns, pipeline.imageShape);
    canvas.dataset.view = 'latent-preview';
    canvas.dataset.step = `${progress.step}/${progress.total}`;
    const image = n > 1 ? ` image ${progress.firstImage + 1} of ${n},` : '';
    const decoding = progress.step === progress.total && progress.firstImage + 1 >= n ? ', then decoding the latents' : '';
    info.textContent = `${label}:${image} step ${progress.step} of ${progress.total}, t = ${progress.t} (latent preview)${decoding}`;
  };
}

/**
 * The step callback of a pipeline: a pixel model's draws each x0 prediction (see previewer); a
 * text-to-image model's previews its latent x0 predictions (see latentPreviewer); a latent
 * model's predictions are latents, so its steps are only counted.
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
  if (isTextToImage(pipeline)) return { previewX0: true, onStep: latentPreviewer(pipeline, canvas, images, n, columns, info, label) };
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

type Truncation = TextToImageResult['truncations'][number];

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
  const prompts = model.kind === 'text-to-image' ? readPrompts() : undefined;
  const pipeline = await pipelineFor(n);
  const shape = pipeline.imageShape;
  const canvas = element<HTMLCanvasElement>('samples');
  const info = element('sample-info');
  const columns = Math.min(n, 8);
  const images = new Float32Array(n * shape[0] * shape[1] * shape[2]); // grey until the first step
  drawImages(canvas, images, n, columns, shape);
  setStatus(`Sampling ${n} image${n === 1 ? '' : 's'}…`);
  const started = performance.now();
  if (isTextToImage(pipeline)) {
    delete canvas.dataset.view;
    element('truncation-note').hidden = true;
    const result = await pipeline.sample({
      ...prompts!,
      steps,
      eta,
      sigmaHat,
      spacing,
      seed,
      count: n,
      ...stepReporter(pipeline, canvas, images, n, columns, info, 'sampling'),
      signal,
    });
    drawImages(canvas, result.images, n, columns, shape);
    canvas.dataset.view = 'decoded';
    showTruncations(pipeline, result, prompts!.negativePrompt);
    const took = seconds(started);
    info.textContent = `${n} image${n === 1 ? '' : 's'} · ${result.timesteps.length} steps (${spacing}) · ${
      sigmaHat ? 'σ̂' : `η = ${eta}`
    } · guidance ${prompts!.guidance} · seed ${seed} · ${took} s`;
    countRun(canvas);
    return `Sampled ${n} image${n === 1 ? '' : 's'} from the prompt in ${took} s on ${gpu.adapterName}.`;
  }
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
  const prompts = model.kind === 'text-to-image' ? readPrompts() : undefined;
  const pipeline = await pipelineFor(frames);
  const shape = pipeline.imageShape;
  const canvas = element<HTMLCanvasElement>('strip');
  const info = element('interpolate-info');
  const images = new Float32Array(frames * shape[0] * shape[1] * shape[2]);
  drawImages(canvas, images, frames, frames, shape);
  setStatus(`Interpolating from seed ${seedA} to seed ${seedB}…`);
  const started = performance.now();
  const reporter = stepReporter(pipeline, canvas, images, frames, frames, info, 'decoding');
  const result = isTextToImage(pipeline)
    ? await pipeline.interpolate({ ...prompts!, seedA, seedB, frames, steps, ...reporter, signal })
    : await pipeline.interpolate({ seedA, seedB, frames, steps, classLabels: classLabels(pipeline), ...reporter, signal });
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
  let decodedImage: Float32Array;
  if (isTextToImage(pipeline)) {
    decodedImage = await textToImageRoundtrip(pipeline, image, steps, element<HTMLTextAreaElement>('prompt').value, signal);
  } else {
    decodedImage = await unconditionalRoundtrip(pipeline, image, steps, signal);
  }
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

const encodingReporter = (info: HTMLElement) => (p: StepProgress) =>
  void (info.textContent = `encoding: step ${p.step} of ${p.total}, t = ${p.t}`);

/** A pixel or latent model's round trip: DDIM run forward to x_T, then back; a latent model's through its autoencoder. */
async function unconditionalRoundtrip(
  pipeline: UnconditionalPipeline,
  image: Float32Array,
  steps: number,
  signal: AbortSignal,
): Promise<Float32Array> {
  const info = element('roundtrip-info');
  const output = element<HTMLCanvasElement>('roundtrip-output');
  const labels = classLabels(pipeline);
  const ddim = ddimOf(pipeline);
  const encodeOptions = {
    steps,
    classLabels: labels,
    onStep: encodingReporter(info),
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
  return isLatent(pipeline) ? (await pipeline.decodeLatents(decoded.x0)).images : decoded.x0;
}

/**
 * A text-to-image model's round trip: the VAE encodes the image, DDIM inverts its latents under
 * the prompt without guidance (the ODE the inversion follows), then samples them back under the
 * same prompt, still without guidance, and the VAE decodes.
 */
async function textToImageRoundtrip(
  pipeline: StableDiffusionPipeline,
  image: Float32Array,
  steps: number,
  prompt: string,
  signal: AbortSignal,
): Promise<Float32Array> {
  const info = element('roundtrip-info');
  const output = element<HTMLCanvasElement>('roundtrip-output');
  const encoded = await pipeline.encode({ images: image }, { prompt, steps, onStep: encodingReporter(info), signal });
  drawImages(element('roundtrip-latent'), encoded.x0, 1, 1, pipeline.latentShape);
  const decoded = await pipeline.sample({
    prompt,
    guidance: 1,
    xT: encoded.x0,
    steps,
    ...stepReporter(pipeline, output, new Float32Array(image.length), 1, 1, info, 'decoding'),
    signal,
  });
  return decoded.images;
}

/** The prompt, the negative prompt and the guidance scale of a text-to-image model. */
function readPrompts(): { prompt: string; negativePrompt: string; guidance: number } {
  return {
    prompt: element<HTMLTextAreaElement>('prompt').value,
    negativePrompt: element<HTMLInputElement>('negative-prompt').value,
    guidance: readNumber('guidance', 0, 100),
  };
}

/**
 * A note when a prompt was longer than the text encoder reads (77 tokens, the start and end tokens
 * included): the prompt's cut from the result; the negative prompt's from the tokenizer here, as
 * the result reports the prompts' only.
 */
function showTruncations(pipeline: StableDiffusionPipeline, result: TextToImageResult, negativePrompt: string): void {
  const tokenizer = pipeline.model.tokenizer;
  const cuts: [string, Truncation | undefined][] = [
    ['prompt', result.truncations[0]],
    ['negative prompt', tokenizer.encodeBatch([negativePrompt]).truncations[0]],
  ];
  const parts = cuts.filter((cut): cut is [string, Truncation] => cut[1] !== undefined).map(([which, { tokens, text }]) =>
    `the ${which} lost its last ${tokens} token${tokens === 1 ? '' : 's'} ("${text}")`
  );
  const note = element('truncation-note');
  note.textContent = parts.length > 0
    ? `The text encoder reads ${tokenizer.maxLength} tokens, start and end included: ${parts.join('; ')}.`
    : '';
  note.hidden = parts.length === 0;
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
