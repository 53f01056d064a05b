/**
 * The benchmark: for one model, what a forward and a whole DDIM sample cost on this adapter, and
 * how far that is from the floor, the rate of the engine's best plain f32 matmul measured in the
 * same run on the same adapter. Counts come from the graph (FLOPs, bytes, dispatches) and from
 * what the sampler really submitted (submits and dispatches per step).
 *
 * Runtime-neutral: the model arrives as files in memory; scripts/bench.ts reads them from disk,
 * parses the command line and writes the JSON.
 */
import { preferredKernels } from '../ops/conv2d.ts';
import { dawnTicksSpaced } from '../gpu/dawn_ticks.ts';
import type { ConvKernels } from '../ops/conv2d.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { type Gpu, requestGpu } from '../gpu/device.ts';
import { readUNet, UNet } from '../models/unet_2d_model.ts';
import type { ModelFiles } from '../pipeline.ts';
import { DdimSampler } from '../sampler/ddim.ts';
import { scheduleFromConfig } from '../sampler/schedule.ts';
import { countGpuCalls, type GpuCallCounts } from './counters.ts';
import { type MatmulFloor, measureMatmulFloor } from './matmul.ts';
import { formatProfile, type KindSummary, type Profile, profileForward, type TimingSource } from './profiler.ts';
import { median } from './timing.ts';

export interface BenchOptions {
  /** A label for the model in the output (e.g. 'emoji32', 'cifar10 layout'). */
  modelName: string;
  /** Where the model came from (a folder, or 'random weights'). */
  modelSource: string;
  files: ModelFiles;
  gpu?: Gpu;
  batch?: number;
  /** The conv kernel family; the adapter's preferred one when omitted (see preferredKernels). */
  kernels?: ConvKernels;
  /** How the UNet is stored on the GPU (f32 by default). */
  precision?: Precision;
  /** DDIM steps of the timed sample. */
  steps?: number;
  /** Timed forwards (after `warmup` untimed ones). */
  repeats?: number;
  warmup?: number;
  /** Forwards profiled node by node. */
  profileSteps?: number;
  /** Run a 1-step sample before the timed one, so the sampler's own pipelines are built (true). */
  ddimWarmup?: boolean;
  matmul?: { minSize?: number; maxSize?: number; targetMs?: number; repeats?: number };
  /** Progress lines (to stderr in the script). */
  log?: (line: string) => void;
  /**
   * The CPU time this process has used, in ms (scripts/bench.ts passes process.cpuUsage). A
   * software driver runs in this process, so CPU time measures its work even while other
   * programs share the cores, where wall time does not.
   */
  cpuClock?: () => number;
  /** Handed the full node-by-node profile (for a Chrome trace). */
  onProfile?: (profile: Profile) => void;
}

export interface BenchResult {
  schema: 'ddim-webgpu-bench/1';
  date: string;
  adapter: string;
  /** The conv kernel family the forwards ran. */
  kernels: ConvKernels;
  precision: Precision;
  implementation: string;
  /** Whether Dawn's completion polling went through setTimeout (a software adapter: src/gpu/dawn_ticks.ts). */
  dawnTicksSpaced: boolean;
  timestampQuery: boolean;
  model: { name: string; source: string; params: number; sampleSize: number; batch: number };
  graph: { dispatchesPerForward: number; gflopPerForward: number; gbPerForward: number; weightMB: number };
  floor: MatmulFloor & { gflops: number; forwardFloorMs: number };
  forward: {
    warmup: number;
    repeats: number;
    /** Median of the repeats, each timed from submit to onSubmittedWorkDone. */
    wallMs: number;
    wallMsAll: number[];
    /** Median GPU time of a forward with one pass per node (first begin to last end); null without timestamps. */
    gpuMs: number | null;
    gflopsWall: number;
    gflopsGpu: number | null;
    /** Measured time over the floor's time for the same FLOPs (1 = as fast as the matmul). */
    wallOverFloor: number;
    gpuOverFloor: number | null;
    /** Median CPU time of this process per forward, with a CPU clock; and its ratio to the matmul's. */
    cpuMs: number | null;
    cpuOverFloor: number | null;
  };
  ddim: {
    /** Steps asked for. */
    steps: number;
    /** UNet forwards the sample ran: its timesteps. */
    forwards: number;
    eta: 0;
    seed: number;
    images: number;
    /** Whole sample: starting noise, every step, the final readback. */
    wallMs: number;
    perStepMs: number;
    counts: GpuCallCounts;
    submitsPerStep: number;
    dispatchesPerStep: number;
    gflops: number;
    wallOverFloor: number;
    cpuMs: number | null;
    cpuOverFloor: number | null;
  };
  profile: {
    timing: TimingSource;
    steps: number;
    stepTotalMs: number;
    nodeSumMs: number;
    timestampQuantumNs: number | null;
    kinds: KindSummary[];
    text: string;
  };
}

/** Uniform values in [-1, 1) from a fixed seed, for the forward's input. */
function randomInput(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2147483648 - 1;
  });
}

export async function runBenchmark(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const batch = options.batch ?? 1;
  const steps = options.steps ?? 50;
  const repeats = options.repeats ?? 10;
  const warmup = options.warmup ?? 3;
  const profileSteps = options.profileSteps ?? Math.min(repeats, 3);
  const seed = 0;
  const gpu = options.gpu ?? await requestGpu();
  log(`adapter: ${gpu.adapterName}`);

  log('matmul (kernel quality) ...');
  const cpuClock = options.cpuClock;
  const floor = await measureMatmulFloor(gpu, { ...options.matmul, cpuClock });
  const floorGflops = floor.best.gflops;
  for (const m of floor.measurements) {
    log(
      `  ${m.variant} ${m.m}^3: ${m.gflops.toFixed(2)} GFLOP/s${m.cpuGflops ? `, ${m.cpuGflops.toFixed(2)} per CPU-second` : ''} (error ${
        m.maxError.toExponential(1)
      })`,
    );
  }
  // FLOPs per CPU-second of the matmul fastest by that measure, for the CPU-time ratios.
  const floorCpuGflops = floor.bestCpu?.cpuGflops ?? null;

  log(`loading ${options.modelName} at batch ${batch} ...`);
  const model = readUNet(options.files);
  const params = [...model.file.tensors.values()].reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const unet = await UNet.compile(gpu, model, { batch, kernels: options.kernels, precision: options.precision });
  let sampler: DdimSampler | undefined;
  try {
    const nodes = unet.compiled.nodeList;
    const flops = nodes.reduce((a, n) => a + n.flops, 0);
    const bytes = nodes.reduce((a, n) => a + n.bytes, 0);
    const forwardFloorMs = flops / (floorGflops * 1e6);

    const [, c, h, w] = unet.sampleShape;
    unet.compiled.write('sample', randomInput(batch * c * h * w, 7));
    unet.compiled.write('timesteps', new Int32Array(batch).fill(500));
    log(`forward: ${warmup} warm-up, ${repeats} timed ...`);
    for (let i = 0; i < warmup; i++) await unet.compiled.run();
    const walls: number[] = [];
    const cpus: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const cpuStart = cpuClock?.();
      const start = performance.now();
      await unet.compiled.run();
      walls.push(performance.now() - start);
      if (cpuClock) cpus.push(cpuClock() - cpuStart!);
    }
    const wallMs = median(walls);
    const cpuMs = cpus.length ? median(cpus) : null;
    const cpuOverFloor = (ms: number | null, forwardsDone: number) =>
      ms !== null && floorCpuGflops ? ms / ((forwardsDone * flops) / (floorCpuGflops * 1e6)) : null;

    log(`profile: ${profileSteps} forward(s) node by node ...`);
    const profile = await profileForward(unet, { steps: profileSteps, warmup: 0 });
    options.onProfile?.(profile);
    const gpuMs = profile.timing === 'timestamp-query' && profile.stepTotalsMs.length ? median(profile.stepTotalsMs) : null;

    log(`DDIM-${steps}: ${options.ddimWarmup ?? true ? 'a 1-step warm-up, then ' : ''}one timed sample of ${batch} image(s) ...`);
    sampler = new DdimSampler(gpu, unet, scheduleFromConfig(options.files.schedulerConfig as Record<string, unknown> | undefined));
    if (options.ddimWarmup ?? true) await sampler.sample({ steps: 1, seed, count: batch });
    const ddimCpuStart = cpuClock?.();
    const start = performance.now();
    const { result: sample, counts } = await countGpuCalls((counter) =>
      sampler!.sample({ steps, seed, count: batch, observers: [counter] })
    );
    const ddimMs = performance.now() - start;
    const ddimCpuMs = cpuClock ? cpuClock() - ddimCpuStart! : null;
    // The forwards the sample really ran (uniform spacing can give one more than asked for).
    const forwards = sample.timesteps.length;
    const ddimFloorMs = forwards * forwardFloorMs;

    return {
      schema: 'ddim-webgpu-bench/1',
      date: new Date().toISOString(),
      adapter: gpu.adapterName,
      implementation: gpu.implementation,
      dawnTicksSpaced: dawnTicksSpaced(gpu.device),
      kernels: options.kernels ?? preferredKernels(gpu.adapter),
      precision: unet.precision,
      timestampQuery: gpu.hasTimestamps,
      model: { name: options.modelName, source: options.modelSource, params, sampleSize: unet.height, batch },
      graph: {
        dispatchesPerForward: nodes.length,
        gflopPerForward: flops / 1e9,
        gbPerForward: bytes / 1e9,
        weightMB: unet.compiled.stats.weightBytes / 1e6,
      },
      floor: { ...floor, gflops: floorGflops, forwardFloorMs },
      forward: {
        warmup,
        repeats,
        wallMs,
        wallMsAll: walls,
        gpuMs,
        gflopsWall: flops / (wallMs * 1e6),
        gflopsGpu: gpuMs ? flops / (gpuMs * 1e6) : null,
        wallOverFloor: wallMs / forwardFloorMs,
        gpuOverFloor: gpuMs ? gpuMs / forwardFloorMs : null,
        cpuMs,
        cpuOverFloor: cpuOverFloor(cpuMs, 1),
      },
      ddim: {
        steps,
        forwards,
        eta: 0,
        seed,
        images: batch,
        wallMs: ddimMs,
        perStepMs: ddimMs / forwards,
        counts,
        submitsPerStep: counts.submits / forwards,
        dispatchesPerStep: counts.dispatches / forwards,
        gflops: (forwards * flops) / (ddimMs * 1e6),
        wallOverFloor: ddimMs / ddimFloorMs,
        cpuMs: ddimCpuMs,
        cpuOverFloor: cpuOverFloor(ddimCpuMs, forwards),
      },
      profile: {
        timing: profile.timing,
        steps: profile.steps,
        stepTotalMs: median(profile.stepTotalsMs),
        nodeSumMs: median(profile.stepNodeSumsMs),
        timestampQuantumNs: profile.timestampQuantumNs,
        kinds: profile.kinds,
        text: formatProfile(profile, { topNodes: 8 }),
      },
    };
  } finally {
    sampler?.destroy();
    unet.destroy();
  }
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 3 : 1)} ms`);

/** The result as a table for a terminal. */
export function formatBenchmark(r: BenchResult): string {
  const f = r.forward;
  const d = r.ddim;
  const best = r.floor.best;
  type Row = [string, string, string, string];
  const flop = r.graph.gflopPerForward * 1e9;
  const rows: Row[] = [
    ['forward, wall (median)', ms(f.wallMs), f.gflopsWall.toFixed(2), f.wallOverFloor.toFixed(2)],
    ...(f.gpuMs !== null ? [['forward, GPU timestamps', ms(f.gpuMs), f.gflopsGpu!.toFixed(2), f.gpuOverFloor!.toFixed(2)] as Row] : []),
    ...(f.cpuMs !== null && f.cpuOverFloor !== null
      ? [['forward, CPU time (all threads)', ms(f.cpuMs), (flop / (f.cpuMs * 1e6)).toFixed(2), f.cpuOverFloor.toFixed(2)] as Row]
      : []),
    [`DDIM-${d.steps} sample, end to end`, ms(d.wallMs), d.gflops.toFixed(2), d.wallOverFloor.toFixed(2)],
    ...(d.cpuMs !== null && d.cpuOverFloor !== null
      ? [[`DDIM-${d.steps}, CPU time`, ms(d.cpuMs), ((d.forwards * flop) / (d.cpuMs * 1e6)).toFixed(2), d.cpuOverFloor.toFixed(2)] as Row]
      : []),
    ['  per DDIM step', ms(d.perStepMs), '', ''],
  ];
  return [
    `bench: ${r.model.name} (${r.model.source}), ${
      (r.model.params / 1e6).toFixed(2)
    }M params, ${r.model.sampleSize}x${r.model.sampleSize}, batch ${r.model.batch}`,
    `adapter: ${r.adapter}; kernels: ${r.kernels}; precision: ${r.precision}; timestamp-query ${r.timestampQuery ? 'yes' : 'no'}${
      r.dawnTicksSpaced ? "; Dawn's polling by setTimeout" : ''
    }; ${r.date}`,
    `graph: ${r.graph.gflopPerForward.toFixed(3)} GFLOP and ${
      r.graph.gbPerForward.toFixed(3)
    } GB counted per forward; ${r.graph.dispatchesPerForward} dispatches per forward`,
    `DDIM step: ${d.dispatchesPerStep.toFixed(2)} dispatches, ${
      d.submitsPerStep.toFixed(2)
    } submits (counted over the whole sample of ${d.forwards} steps, ` +
    `starting noise and readback included: ${d.counts.dispatches} dispatches, ${d.counts.submits} submits)`,
    `matmul (kernel quality): ${
      r.floor.measurements.map((m) => `${m.variant} ${m.m}^3 ${m.gflops.toFixed(2)} GFLOP/s`).join(', ')
    }; best ${best.variant}, ` +
    `${r.floor.gflops.toFixed(2)} GFLOP/s = ${ms(r.floor.forwardFloorMs)} for a forward's FLOPs` +
    (r.floor.bestCpu ? `; per CPU-second ${r.floor.bestCpu.variant} ${r.floor.bestCpu.cpuGflops!.toFixed(2)} GFLOP` : ''),
    '',
    `${pad('', 30)}${lpad('time', 12)}${lpad('GFLOP/s', 10)}${lpad('x matmul', 9)}`,
    ...rows.map(([a, b, c, e]) => `${pad(a, 30)}${lpad(b, 12)}${lpad(c, 10)}${lpad(e, 9)}`),
    '',
    r.profile.text,
  ].join('\n');
}
