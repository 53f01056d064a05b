/**
 * `bench --layout sd15 --peers`: one Stable Diffusion component, the engine beside ONNX Runtime
 * in the same process on the same inputs, timed the way a user calls each (input arrays in, output
 * array back):
 * - 'unet': UNet2DConditionModel at batch 2 x images (classifier-free guidance's [negative,
 *   positive]), inputs sample f32 [2b, 4, h, w], timestep (int64 scalar for ORT, one per image for
 *   the engine, all equal), encoder_hidden_states f32 [2b, 77, 768];
 * - 'vae-decoder': AutoencoderKL's decode(z) (post_quant_conv included), z f32 [b, 4, h, w].
 * The peers' graphs are graph-only (../shared/peers/sd15_*.onnx): their external data is made up
 * and cached on disk (ort.ts), so the engine's random weights are not theirs and no agreement
 * figure is given; speed does not depend on the values.
 *
 * From the UNet forward it derives a guided DDIM step (the forward, then guidance and the DDIM
 * update in JS, timed here) and projects a 50-step image at the layout's full size by the
 * engine's FLOP count, saying that it is a projection.
 */
import type { Gpu } from '../../src/gpu/device.ts';
import type { Precision } from '../../src/gpu/shader_source.ts';
import type { GraphLimits } from '../../src/graph/executor.ts';
import { parseSafetensors } from '../../src/io/safetensors.ts';
import { downscaleFactor, parseAutoencoderConfig } from '../../src/models/autoencoder_config.ts';
import { Autoencoder } from '../../src/models/autoencoder_model.ts';
import { deviceKernels } from '../../src/models/compile.ts';
import { randomAutoencoderSafetensors, randomConditionalUNetSafetensors } from '../../src/models/random_weights.ts';
import { buildConditionalUNetGraph } from '../../src/models/unet_2d_condition.ts';
import { ConditionalUNet, readConditionalUNet } from '../../src/models/unet_2d_condition_model.ts';
import { WeightStore } from '../../src/models/weights.ts';
import type { ConvKernels } from '../../src/ops/conv2d.ts';
import { median } from '../../src/profile/timing.ts';
import { ddimStepCoefficients, ddimTimesteps, scheduleFromConfig } from '../../src/sampler/schedule.ts';
import type { PeerModel } from './onnx.ts';
import { openOrtSession, type OrtPeerSession, PeerUnavailableError } from './ort.ts';
import { type OrtLike, type PeerName, uniformInput } from './peers.ts';

export const SD_COMPONENTS = ['unet', 'vae-decoder'] as const;
export type SdComponent = typeof SD_COMPONENTS[number];

/** The peers' ONNX file for a layout's component, in ../shared/peers: sd15_unet.onnx, sd15_vae_decoder.onnx. */
export function sdPeerModelName(layout: string, component: SdComponent): string {
  return `${layout}_${component === 'unet' ? 'unet' : 'vae_decoder'}`;
}

/** The context length and guidance scale of SD's pipeline (CLIP's 77 tokens, the default 7.5). */
const CONTEXT_LENGTH = 77;
const GUIDANCE = 7.5;
/** The steps of the projected image. */
const PROJECTED_STEPS = 50;

export class SdPeerInputError extends Error {
  override name = 'SdPeerInputError';
}

export interface SdPeersOptions {
  gpu: Gpu;
  component: SdComponent;
  /** The component's config.json (unet/ or vae/), parsed JSON. */
  config: Record<string, unknown>;
  /** scheduler/scheduler_config.json, for the guided step's coefficients. */
  schedulerConfig?: Record<string, unknown>;
  model: PeerModel;
  /** Images: the UNet runs twice as many (guidance), the decoder this many. */
  images: number;
  /** The image in pixels; the latents are 1/8 of it. */
  height: number;
  width: number;
  precision?: Precision;
  kernels?: ConvKernels;
  limits?: Partial<GraphLimits>;
  repeats: number;
  /** Untimed forwards after the first (which compiles shaders and is reported apart). */
  warmup: number;
  which: PeerName[];
  cacheDir?: string;
  log?: (line: string) => void;
}

export interface SdPeerEntry {
  runtime: string;
  adapter: string;
  /** Whether the peer's WebGPU adapter is the engine's (by name); absent for the CPU. */
  sameAdapter?: boolean;
  sessionMs: number;
  firstForwardMs: number;
  /** Median of the timed forwards, input arrays to the output array. */
  forwardMs: number;
  forwardMsAll: number[];
  /** Its forward over the engine's (above 1: the engine is faster). */
  timesEngine: number;
  /** UNet: one guided DDIM step, the forward and the update in JS. */
  perStepMs?: number;
  /** UNet: projected from this run's forward, see SdPeersResult.projection. */
  projectedFiftyStepsMs?: number;
}

export interface SdPeersResult {
  schema: 'ddim-webgpu-bench-sd-peers/1';
  date: string;
  adapter: string;
  component: SdComponent;
  model: { name: string; params: number };
  precision: Precision;
  images: number;
  height: number;
  width: number;
  /** The engine's forward, as the peers' are timed (input arrays in, output array back). */
  forward: {
    batch: number;
    /** The inputs' shapes, the same arrays for every runtime. */
    inputs: Record<string, number[]>;
    firstMs: number;
    /** Untimed forwards, the first (compiling, firstMs) included. */
    warmup: number;
    repeats: number;
    wallMs: number;
    wallMsAll: number[];
    gflopPerForward: number | null;
  };
  /** UNet: guidance and the DDIM update over the batch's latents in JS (median), the rest of a step. */
  guidedUpdateMs: number | null;
  /** UNet: a 50-step image at the layout's full size, from this run's forwards scaled by the engine's FLOPs. */
  projection: {
    note: string;
    height: number;
    width: number;
    steps: number;
    flopRatio: number;
    engine: { forwardMs: number; fiftyStepsMs: number };
  } | null;
  peers: {
    onnx: { name: string; weights: 'random (graph-only file, external data made up)' | 'inside the file' };
    engine: { adapter: string; forwardMs: number; forwardMsAll: number[]; perStepMs?: number };
    peers: Partial<Record<PeerName, SdPeerEntry | { error: string }>>;
  };
}

interface Input {
  name: string;
  type: 'float32' | 'int64';
  data: Float32Array | BigInt64Array;
  dims: number[];
}

/** A forward through an ORT session with named inputs; the first output comes back. */
function ortForward(ort: OrtLike, session: OrtPeerSession['session'], inputs: Input[]): () => Promise<Float32Array> {
  const missing = inputs.filter((i) => !session.inputNames.includes(i.name)).map((i) => i.name);
  if (missing.length) {
    throw new SdPeerInputError(
      `the ONNX graph's inputs are ${session.inputNames.join(', ')}; it lacks ${missing.join(', ')} (not this component's graph?)`,
    );
  }
  const output = session.outputNames[0];
  return async () => {
    const feeds = Object.fromEntries(inputs.map((i) => [i.name, new ort.Tensor(i.type, i.data, i.dims)]));
    return (await session.run(feeds))[output].data as Float32Array;
  };
}

async function timeForwards(
  forward: () => Promise<unknown>,
  warmup: number,
  repeats: number,
): Promise<{ firstMs: number; all: number[] }> {
  let start = performance.now();
  await forward();
  const firstMs = performance.now() - start;
  for (let i = 0; i < warmup; i++) await forward();
  const all: number[] = [];
  for (let i = 0; i < repeats; i++) {
    start = performance.now();
    await forward();
    all.push(performance.now() - start);
  }
  return { firstMs, all };
}

/** Classifier-free guidance and the DDIM update (η = 0) over the latents, as a user of ORT writes them between forwards. */
export function guidedDdimUpdate(
  x: Float32Array,
  eps: Float32Array,
  step: { sqrtOneMinusAlphaT: number; invSqrtAlphaT: number; coefX0: number; dirCoef: number },
  guidance: number,
): void {
  // eps holds the negative prompts' predictions for all images, then the prompts'.
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const e = eps[i] + guidance * (eps[n + i] - eps[i]);
    const x0 = (x[i] - step.sqrtOneMinusAlphaT * e) * step.invSqrtAlphaT;
    x[i] = step.coefX0 * x0 + step.dirCoef * e;
  }
}

function unetFlops(
  config: ReturnType<typeof readConditionalUNet>,
  batch: number,
  height: number,
  width: number,
  kernels: ConvKernels,
  precision: Precision,
) {
  const graph = buildConditionalUNetGraph(config.config, new WeightStore(config.file, { check: false }), {
    batch,
    height,
    width,
    contextLength: CONTEXT_LENGTH,
    kernels,
    precision,
  });
  return graph.nodes.reduce((n, node) => n + node.flops, 0);
}

export async function runSdPeers(options: SdPeersOptions): Promise<SdPeersResult> {
  const { gpu, component, images, height, width } = options;
  const log = options.log ?? (() => {});
  const precision = options.precision ?? 'f32';
  if (height % 8 || width % 8) throw new SdPeerInputError(`the image is ${height}x${width}: each side must be a multiple of 8`);
  const [h, w] = [height / 8, width / 8];
  let params = 0;
  let batch: number;
  let inputs: Input[];
  let engineForward: () => Promise<Float32Array>;
  let release: () => void;
  let flops: number | null = null;
  let fullSizeFlops: number | null = null;
  let fullSize = 0;

  log(`${component}: random weights for the engine ...`);
  if (component === 'unet') {
    batch = 2 * images;
    const unetFiles = { config: options.config, weights: randomConditionalUNetSafetensors(options.config, 1, { dtype: 'F16' }) };
    const weights = readConditionalUNet(unetFiles);
    params = [...weights.file.tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const c = weights.config.inChannels;
    const sample = uniformInput(batch * c * h * w, 7);
    log(`unet: compiling at batch ${batch}, ${h}x${w} latents, ${precision} ...`);
    const unet = await ConditionalUNet.compile(gpu, weights, {
      batch,
      height: h,
      width: w,
      contextLength: CONTEXT_LENGTH,
      precision,
      kernels: options.kernels,
      limits: options.limits,
    });
    if (unet.batch !== batch) {
      unet.destroy();
      throw new SdPeerInputError(`the adapter holds the UNet at batch ${unet.batch} only, not ${batch}: try a smaller image`);
    }
    const hidden = unet.encoderHiddenStatesShape[2];
    const context = uniformInput(batch * CONTEXT_LENGTH * hidden, 11);
    inputs = [
      { name: 'sample', type: 'float32', data: sample, dims: [batch, c, h, w] },
      { name: 'timestep', type: 'int64', data: BigInt64Array.of(500n), dims: [] },
      { name: 'encoder_hidden_states', type: 'float32', data: context, dims: [batch, CONTEXT_LENGTH, hidden] },
    ];
    const t = new Int32Array(batch).fill(500);
    engineForward = () => unet.forward(sample, t, context);
    flops = unet.compiled.nodeList.reduce((n, node) => n + node.flops, 0);
    fullSize = weights.config.sampleSize ?? 64;
    fullSizeFlops = h === fullSize && w === fullSize
      ? flops
      : unetFlops(weights, batch, fullSize, fullSize, deviceKernels(gpu, options.kernels), unet.precision);
    release = () => unet.destroy();
  } else {
    batch = images;
    const config = parseAutoencoderConfig(options.config);
    if (downscaleFactor(config) !== 8) throw new SdPeerInputError(`the VAE downscales by ${downscaleFactor(config)}, not 8`);
    const file = parseSafetensors(randomAutoencoderSafetensors(options.config, 1));
    params = [...file.tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const vae = Autoencoder.load(gpu, { config, file }, { precision, kernels: options.kernels, limits: options.limits });
    const shape: [number, number, number, number] = [batch, config.latentChannels, h, w];
    const z = uniformInput(batch * config.latentChannels * h * w, 7);
    inputs = [{ name: 'z', type: 'float32', data: z, dims: shape }];
    engineForward = async () => (await vae.decode(z, shape)).image;
    release = () => vae.destroy();
  }

  log(`${component}: the engine's forward: ${options.warmup + 1} untimed (the first compiles), ${options.repeats} timed ...`);
  let engine: { firstMs: number; all: number[] };
  try {
    engine = await timeForwards(engineForward, options.warmup, options.repeats);
  } finally {
    release();
    // Nothing of the engine's model stays reachable while the peers load theirs.
    engineForward = () => Promise.reject(new Error('released'));
  }
  const engineMs = median(engine.all);
  log(`${component}: engine ${(engineMs / 1000).toFixed(2)} s per forward (first ${(engine.firstMs / 1000).toFixed(2)} s)`);

  // The rest of a guided step: guidance and the DDIM update in JS over the latents (microseconds).
  let guidedUpdateMs: number | null = null;
  if (component === 'unet') {
    const schedule = scheduleFromConfig(options.schedulerConfig);
    const [step] = ddimStepCoefficients(schedule, ddimTimesteps(PROJECTED_STEPS, 'uniform', schedule.numTrainTimesteps), 0);
    const latents = (inputs[0].data as Float32Array).slice(0, images * 4 * h * w);
    const eps = inputs[0].data as Float32Array;
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const start = performance.now();
      guidedDdimUpdate(latents, eps, step, GUIDANCE);
      times.push(performance.now() - start);
    }
    guidedUpdateMs = median(times);
  }
  const flopRatio = fullSizeFlops !== null && flops ? fullSizeFlops / flops : 1;
  // The update grows with the latents' pixels, the forward by the FLOPs.
  const project = (forwardMs: number) => PROJECTED_STEPS * (forwardMs * flopRatio + guidedUpdateMs! * (fullSize * fullSize) / (h * w));

  const result: SdPeersResult = {
    schema: 'ddim-webgpu-bench-sd-peers/1',
    date: new Date().toISOString(),
    adapter: gpu.adapterName,
    component,
    model: { name: options.model.name.replace(/\.onnx$/, ''), params },
    precision,
    images,
    height,
    width,
    forward: {
      batch,
      inputs: Object.fromEntries(inputs.map((i) => [i.name, i.dims])),
      firstMs: engine.firstMs,
      warmup: options.warmup + 1,
      repeats: options.repeats,
      wallMs: engineMs,
      wallMsAll: engine.all,
      gflopPerForward: flops !== null ? flops / 1e9 : null,
    },
    guidedUpdateMs,
    projection: guidedUpdateMs !== null
      ? {
        note: h === fullSize && w === fullSize
          ? `measured at ${fullSize * 8}x${fullSize * 8}: 50 x (forward + update)`
          : `projected: forwards scaled by the engine's FLOPs at ${fullSize}x${fullSize} latents over ${h}x${w} ` +
            `(x${flopRatio.toFixed(2)}; attention grows faster than that), 50 x (forward + update)`,
        height: fullSize * 8,
        width: fullSize * 8,
        steps: PROJECTED_STEPS,
        flopRatio,
        engine: { forwardMs: engineMs * flopRatio, fiftyStepsMs: project(engineMs) },
      }
      : null,
    peers: {
      onnx: {
        name: options.model.name,
        weights: options.model.externalData ? 'random (graph-only file, external data made up)' : 'inside the file',
      },
      engine: {
        adapter: gpu.adapterName,
        forwardMs: engineMs,
        forwardMsAll: engine.all,
        ...(guidedUpdateMs !== null ? { perStepMs: engineMs + guidedUpdateMs } : {}),
      },
      peers: {},
    },
  };

  for (const name of options.which) {
    log(`${component}: ${name} with ${options.model.name} at batch ${batch} ...`);
    let opened: OrtPeerSession;
    try {
      opened = await openOrtSession(name, { gpu, model: options.model, cacheDir: options.cacheDir, log });
    } catch (e) {
      const message = oneLine(e);
      log(`  ${name}: not run: ${message}`);
      result.peers.peers[name] = { error: message };
      continue;
    }
    try {
      log(`  ${name}: ${opened.runtime} on ${opened.adapter}; session in ${(opened.sessionMs / 1000).toFixed(1)} s; forwards ...`);
      const forward = ortForward(opened.ort, opened.session, inputs);
      const timed = await timeForwards(forward, options.warmup, options.repeats);
      const forwardMs = median(timed.all);
      log(`  ${name}: ${(forwardMs / 1000).toFixed(2)} s per forward (first ${(timed.firstMs / 1000).toFixed(2)} s)`);
      result.peers.peers[name] = {
        runtime: opened.runtime,
        adapter: opened.adapter,
        ...(name === 'ort-webgpu' ? { sameAdapter: opened.adapter === gpu.adapterName } : {}),
        sessionMs: opened.sessionMs,
        firstForwardMs: timed.firstMs,
        forwardMs,
        forwardMsAll: timed.all,
        timesEngine: forwardMs / engineMs,
        ...(guidedUpdateMs !== null ? { perStepMs: forwardMs + guidedUpdateMs, projectedFiftyStepsMs: project(forwardMs) } : {}),
      };
    } catch (e) {
      const message = oneLine(e);
      log(`  ${name}: failed: ${message}`);
      result.peers.peers[name] = { error: message };
    } finally {
      await opened.session.release();
    }
  }
  return result;
}

/** An error as one line: its name (unless it is the peer's own refusal, which says it all) and its message's first line. */
function oneLine(e: unknown): string {
  const error = e instanceof Error ? e : new Error(String(e));
  const first = error.message.split('\n').find((l) => l.trim()) ?? '(no message)';
  return (error instanceof PeerUnavailableError ? '' : `${error.name}: `) + first.trim();
}

const seconds = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`);
const minutes = (ms: number) => (ms >= 120_000 ? `${(ms / 60_000).toFixed(1)} min` : seconds(ms));

/** The engine and its peers side by side on one SD component, for the terminal. */
export function formatSdPeers(r: SdPeersResult): string {
  const unet = r.component === 'unet';
  const header = ['', 'forward', 'x engine', 'first', 'session'];
  if (unet) header.push('guided step', `${r.projection!.steps} steps ${r.projection!.width}² (proj.)`);
  header.push('adapter');
  const rows: string[][] = [header];
  const engineRow = ['this engine', seconds(r.forward.wallMs), '1', seconds(r.forward.firstMs), '-'];
  if (unet) engineRow.push(seconds(r.peers.engine.perStepMs!), minutes(r.projection!.engine.fiftyStepsMs));
  rows.push([...engineRow, r.adapter]);
  for (const [name, p] of Object.entries(r.peers.peers)) {
    if ('error' in p) {
      rows.push([name, 'not run', '', '', '', ...(unet ? ['', ''] : []), p.error.slice(0, 100)]);
      continue;
    }
    const row = [name, seconds(p.forwardMs), p.timesEngine.toFixed(2), seconds(p.firstForwardMs), seconds(p.sessionMs)];
    if (unet) row.push(seconds(p.perStepMs!), minutes(p.projectedFiftyStepsMs!));
    rows.push([...row, p.adapter + (p.sameAdapter === false ? " (NOT the engine's)" : '')]);
  }
  const last = header.length - 1;
  const widths = header.map((_, i) => Math.max(...rows.map((row) => row[i].length)) + 2);
  const inputs = Object.entries(r.forward.inputs).map(([k, v]) => `${k} [${v.join(',')}]`).join(', ');
  return [
    `peers: ${r.peers.onnx.name} (${
      r.model.params ? `${(r.model.params / 1e6).toFixed(1)}M parameters; ` : ''
    }weights: ${r.peers.onnx.weights}), ${r.height}x${r.width} images, batch ${r.forward.batch}${
      unet ? ' (guidance)' : ''
    }, ${r.precision}; inputs ${inputs}`,
    `forwards from the input arrays to the output array, median of ${r.forward.repeats} after ${r.forward.warmup} untimed (the first: "first"); ` +
    `x engine = its time / the engine's`,
    ...rows.map((row) =>
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : i === last ? `  ${cell}` : cell.padStart(widths[i]))).join('')
    ),
    ...(unet
      ? [
        `guided step = forward + guidance and the DDIM update in JS (${r.guidedUpdateMs!.toFixed(3)} ms); ${r.projection!.note}` +
        (r.forward.gflopPerForward !== null ? `; ${r.forward.gflopPerForward.toFixed(1)} GFLOP per forward here` : ''),
      ]
      : []),
  ].join('\n');
}
