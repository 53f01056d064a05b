/**
 * The text-to-image benchmark: a Stable Diffusion layout (its published configs, random weights made
 * in memory) through StableDiffusionPipeline at an image size, timing each component alone (a
 * prompt's encoding, one UNet forward at batch 2 as guidance runs it, a VAE decode) and a whole
 * sample, and reporting the GPU memory each component holds, the peak and the largest binding.
 *
 * Runtime-neutral: the files arrive in memory; scripts/bench.ts reads the configs, parses the
 * command line and writes the JSON.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Precision } from '../gpu/shader_source.ts';
import type { GraphLimits } from '../graph/executor.ts';
import type { ModelFiles } from '../models/model_files.ts';
import { ConditionalUNet } from '../models/unet_2d_condition_model.ts';
import { ENCODER_HIDDEN_STATES_INPUT, SAMPLE_INPUT, TIMESTEP_INPUT } from '../models/unet_2d_condition.ts';
import { readTextToImageModel, StableDiffusionPipeline, type TextToImageMemory } from '../text_to_image_pipeline.ts';
import { isSoftwareAdapter } from '../gpu/adapter.ts';
import { formatProfile, type KindSummary, type Profile, profileForward, type TimingSource } from './profiler.ts';
import { median } from './timing.ts';

export interface TextToImageBenchOptions {
  /** A label for the layout in the output ('sd15 layout'). */
  modelName: string;
  modelSource: string;
  files: ModelFiles;
  gpu: Gpu;
  height: number;
  width: number;
  precision?: Precision;
  /** Limits stricter than the adapter's (WebGPU's defaults, to see what any page gets). */
  limits?: Partial<GraphLimits>;
  /** Timed runs of each component, after `warmup` untimed ones. */
  repeats?: number;
  warmup?: number;
  /** DDIM steps of the whole sample (guided, 7.5). */
  steps?: number;
  /** How long making the random files took, for the record. */
  filesMs?: number;
  /**
   * Also time one UNet forward node by node (default: on a GPU, where it costs about a forward; a
   * software adapter times its many nodes one submit at a time, minutes at full size).
   */
  profile?: boolean;
  /** Handed that node-by-node profile (for a Chrome trace). */
  onProfile?: (profile: Profile) => void;
  log?: (line: string) => void;
}

export interface TextToImageBenchResult {
  schema: 'ddim-webgpu-bench-text-to-image/1';
  date: string;
  adapter: string;
  precision: Precision;
  model: { name: string; source: string; params: { unet: number; textEncoder: number; vae: number }; height: number; width: number };
  limits: Partial<GraphLimits> | null;
  setup: { filesMs: number | null; readMs: number; loadMs: number };
  forward: {
    /** One UNet forward at batch 2 ([negative, positive], as guidance runs it). */
    batch: number;
    warmup: number;
    repeats: number;
    /** Median of the repeats, each from submit to onSubmittedWorkDone. */
    wallMs: number;
    wallMsAll: number[];
    gflopPerForward: number;
    gflopsWall: number;
  };
  components: {
    /** One prompt through the compiled text encoder (median). */
    textEncoderMs: number;
    /** The first encoding: the text encoder compiled and uploaded, then run. */
    textEncoderFirstMs: number;
    unetForwardMs: number;
    /** One decode of the latents through the compiled VAE decoder (median). */
    vaeDecodeMs: number;
    /** The whole sample: two prompts encoded, `steps` guided steps, the VAE compiled and run. */
    sampleMs: number;
    steps: number;
  };
  /** The pipeline's: each component at its largest, the peak held at once, the largest binding. */
  memory: TextToImageMemory;
  /** One batch-2 UNet forward node by node, per op kind; null where not profiled (`profile`). */
  profile: { timing: TimingSource; stepTotalMs: number; nodeSumMs: number; kinds: KindSummary[]; text: string } | null;
}

function count(file: { tensors: Map<string, { shape: number[] }> }): number {
  return [...file.tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

async function timed(repeats: number, run: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  return times;
}

export async function runTextToImageBenchmark(options: TextToImageBenchOptions): Promise<TextToImageBenchResult> {
  const log = options.log ?? (() => {});
  const { gpu, height, width } = options;
  const precision = options.precision ?? 'f32';
  const repeats = options.repeats ?? 3;
  const warmup = options.warmup ?? 1;
  const steps = options.steps ?? 2;
  const prompt = 'a photograph of an astronaut riding a horse';
  log(`adapter: ${gpu.adapterName}`);

  let start = performance.now();
  const model = readTextToImageModel(options.files);
  const readMs = performance.now() - start;
  log(`weights checked in ${(readMs / 1000).toFixed(1)} s; loading at ${height}x${width}, ${precision} (the guided UNet compiles) ...`);
  start = performance.now();
  // The text encoder is freed once a sample's prompts are encoded: the peak a page would see.
  const pipeline = await StableDiffusionPipeline.load(gpu, model, {
    height,
    width,
    precision,
    limits: options.limits,
    releaseTextEncoder: true,
  });
  const loadMs = performance.now() - start;
  try {
    log('text encoder: compiled, then timed ...');
    start = performance.now();
    await pipeline.encodePrompt([prompt]);
    const textEncoderFirstMs = performance.now() - start;
    const encodeTimes = await timed(repeats, () => pipeline.encodePrompt([prompt]));

    // A UNet of its own at batch 2, sharing the pipeline's weights on the device (the same model).
    log(`unet forward at batch 2: ${warmup} warm-up, ${repeats} timed ...`);
    const [c, h, w] = pipeline.latentShape;
    const unet = await ConditionalUNet.compile(gpu, model.unet, {
      batch: 2,
      height: h,
      width: w,
      contextLength: model.tokenizer.maxLength,
      precision: pipeline.precision,
      limits: options.limits,
    });
    let forwardTimes: number[];
    let flops: number;
    let profile: Profile | undefined;
    try {
      const [batch, tokens, hidden] = unet.encoderHiddenStatesShape;
      unet.compiled.write(SAMPLE_INPUT, new Float32Array(batch * c * h * w).map((_, i) => Math.sin(i)));
      unet.compiled.write(TIMESTEP_INPUT, new Int32Array(batch).fill(500));
      unet.compiled.write(ENCODER_HIDDEN_STATES_INPUT, new Float32Array(batch * tokens * hidden).map((_, i) => Math.cos(i)));
      for (let i = 0; i < warmup; i++) await unet.compiled.run();
      forwardTimes = await timed(repeats, () => unet.compiled.run());
      flops = unet.compiled.nodeList.reduce((n, node) => n + node.flops, 0);
      if (options.profile ?? !isSoftwareAdapter(gpu.adapter)) {
        log('unet forward node by node ...');
        profile = await profileForward(unet.compiled, { steps: 1, warmup: 0 });
        options.onProfile?.(profile);
      }
    } finally {
      unet.destroy();
    }

    log(`whole sample: DDIM-${steps} under guidance 7.5, then the VAE (compiled) ...`);
    start = performance.now();
    const result = await pipeline.sample({ prompt, guidance: 7.5, steps, seed: 0 });
    const sampleMs = performance.now() - start;
    log(`vae decode: ${repeats} timed ...`);
    const decodeTimes = await timed(repeats, () => pipeline.decodeLatents(result.x0));

    const wallMs = median(forwardTimes);
    return {
      schema: 'ddim-webgpu-bench-text-to-image/1',
      date: new Date().toISOString(),
      adapter: gpu.adapterName,
      // As the adapter ran it: 'f16' without shader-f16 is 'f16-packed'.
      precision: pipeline.precision,
      model: {
        name: options.modelName,
        source: options.modelSource,
        params: { unet: count(model.unet.file), textEncoder: count(model.textEncoder.file), vae: count(model.autoencoder.file) },
        height,
        width,
      },
      limits: options.limits ?? null,
      setup: { filesMs: options.filesMs ?? null, readMs, loadMs },
      forward: {
        batch: 2,
        warmup,
        repeats,
        wallMs,
        wallMsAll: forwardTimes,
        gflopPerForward: flops / 1e9,
        gflopsWall: flops / (wallMs * 1e6),
      },
      components: {
        textEncoderMs: median(encodeTimes),
        textEncoderFirstMs,
        unetForwardMs: wallMs,
        vaeDecodeMs: median(decodeTimes),
        sampleMs,
        steps,
      },
      memory: pipeline.memory(),
      profile: profile
        ? {
          timing: profile.timing,
          stepTotalMs: median(profile.stepTotalsMs),
          nodeSumMs: median(profile.stepNodeSumsMs),
          kinds: profile.kinds,
          text: formatProfile(profile, { topNodes: 8 }),
        }
        : null,
    };
  } finally {
    pipeline.destroy();
  }
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const seconds = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

export function formatTextToImageBenchmark(r: TextToImageBenchResult): string {
  const p = r.model.params;
  const m = r.memory;
  const part = (name: string, x: TextToImageMemory['unet']) =>
    `  ${name.padEnd(13)} weights ${mib(x.weightBytes).padStart(11)}, buffers ${mib(x.activationBytes).padStart(10)}, largest binding ${
      mib(x.largestBindingBytes)
    }`;
  return [
    `bench: ${r.model.name} (${r.model.source}), ${r.model.height}x${r.model.width}, ${r.precision}; UNet ${
      (p.unet / 1e6).toFixed(1)
    }M, text encoder ${(p.textEncoder / 1e6).toFixed(1)}M, VAE ${(p.vae / 1e6).toFixed(1)}M parameters`,
    `adapter: ${r.adapter}; limits: ${
      r.limits ? Object.entries(r.limits).map(([k, v]) => `${k} ${mib(v as number)}`).join(', ') : "the adapter's"
    }; ${r.date}`,
    `setup: ${r.setup.filesMs !== null ? `random files ${seconds(r.setup.filesMs)}, ` : ''}weights checked ${seconds(r.setup.readMs)}, ` +
    `loaded (guided UNet compiled) ${seconds(r.setup.loadMs)}`,
    `text encoder, one prompt:      ${seconds(r.components.textEncoderMs)} (first, compiling: ${seconds(r.components.textEncoderFirstMs)})`,
    `unet forward, batch 2:         ${seconds(r.forward.wallMs)} (${r.forward.gflopPerForward.toFixed(1)} GFLOP, ${
      r.forward.gflopsWall.toFixed(2)
    } GFLOP/s)`,
    `vae decode:                    ${seconds(r.components.vaeDecodeMs)}`,
    `sample, DDIM-${r.components.steps} guided, decoded: ${seconds(r.components.sampleMs)} (VAE compiled in it)`,
    'GPU memory:',
    part('text encoder', m.textEncoder) + ' (freed once a sample has encoded its prompts)',
    part('unet', m.unet),
    part('vae', m.vae),
    `  peak ${mib(m.peakBytes)} held at once (now ${mib(m.totalBytes)}); largest binding ${mib(m.largestBindingBytes)}`,
    r.profile
      ? `unet forward node by node:\n${r.profile.text}`
      : 'unet forward node by node: not profiled (software adapter; --trace FILE profiles it)',
  ].join('\n');
}
