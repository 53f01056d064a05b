/**
 * The peers of the benchmark: what a user would run instead of this engine, timed the way the
 * engine is timed, in the same process. Runtime-neutral: the ONNX Runtime module arrives as an
 * argument (scripts/peers/ort.ts loads it in Node and Deno, scripts/peers/page.ts in a browser),
 * so nothing here imports a peer, and the engine and its bundle never do.
 *
 * A forward is what a user's code does per call: make the input tensors from JS arrays, run, and
 * have the output back in a Float32Array. The DDIM sample is written as a user of that runtime
 * would write it: the same schedule and timesteps as the engine's sampler, the update in JS
 * between forwards, one forward per step.
 */
import { ddimStepCoefficients, ddimTimesteps, type NoiseSchedule } from '../../src/sampler/schedule.ts';
import { median } from '../../src/profile/timing.ts';

export const PEER_NAMES = ['ort-webgpu', 'ort-cpu'] as const;
export type PeerName = typeof PEER_NAMES[number];

/** The little of onnxruntime-common's API used here (onnxruntime-web and onnxruntime-node share it). */
export interface OrtLike {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
  InferenceSession: {
    create(model: string | Uint8Array, options?: Record<string, unknown>): Promise<OrtSessionLike>;
  };
  env: { versions?: Record<string, string> };
}

export interface OrtSessionLike {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
  release(): Promise<void>;
}

/** One loaded peer: its model in a session, ready for forwards. */
export interface PeerSession {
  name: PeerName;
  /** The runtime and its version, e.g. 'onnxruntime-web 1.30.0 (webgpu EP)'. */
  runtime: string;
  /** Where it runs: the WebGPU adapter's name, or the CPU's. */
  adapter: string;
  /** ms to create the session (model parsed, graph optimised, weights uploaded). */
  sessionMs: number;
  /** eps for `batch` images x at timestep t (one per image). */
  forward(x: Float32Array, t: number[]): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Wraps an ORT session as a peer: inputs by position (x, t), the first output is eps. */
export function ortPeer(
  ort: OrtLike,
  session: OrtSessionLike,
  info: { name: PeerName; runtime: string; adapter: string; sessionMs: number; imageShape: [number, number, number] },
): PeerSession {
  const [c, h, w] = info.imageShape;
  const [xName, tName] = session.inputNames;
  const epsName = session.outputNames[0];
  return {
    ...info,
    async forward(x, t) {
      const feeds = {
        [xName]: new ort.Tensor('float32', x, [t.length, c, h, w]),
        [tName]: new ort.Tensor('int64', BigInt64Array.from(t, (v) => BigInt(v)), [t.length]),
      };
      const out = await session.run(feeds);
      return out[epsName].data as Float32Array;
    },
    release: () => session.release(),
  };
}

export interface PeerTimings {
  /** Runs before the timed ones: the first compiles shaders and fills caches, so it is kept apart. */
  firstForwardMs: number;
  warmup: number;
  repeats: number;
  /** Median of the timed forwards, each from the input arrays to the output array. */
  forwardMs: number;
  forwardMsAll: number[];
  ddim: { steps: number; forwards: number; images: number; wallMs: number; perStepMs: number };
}

/** Uniform values in [-1, 1) from a fixed seed (the engine's benchmark input has the same law). */
export function uniformInput(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2147483648 - 1;
  });
}

/** Standard normals from a seeded generator (Box-Muller), as a user's script would make x_T. */
function gaussian(size: number, seed: number): Float32Array {
  const u = uniformInput(2 * size, seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const a = Math.max((u[2 * i] + 1) / 2, 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(a)) * Math.cos(Math.PI * (u[2 * i + 1] + 1));
  }
  return out;
}

/** A DDIM sample (η = 0, uniform spacing, the engine's default) with the update in JS between forwards. */
export async function ddimWithPeer(
  peer: Pick<PeerSession, 'forward'>,
  schedule: NoiseSchedule,
  options: { steps: number; images: number; perImage: number; seed: number },
): Promise<{ x0: Float32Array; forwards: number }> {
  const timesteps = ddimTimesteps(options.steps, 'uniform', schedule.numTrainTimesteps);
  const steps = ddimStepCoefficients(schedule, timesteps, 0);
  const clip = schedule.clipSample ? schedule.clipSampleRange : Infinity;
  const x = gaussian(options.images * options.perImage, options.seed);
  for (const s of steps) {
    const eps = await peer.forward(x, new Array(options.images).fill(s.modelTimestep));
    for (let i = 0; i < x.length; i++) {
      const x0 = Math.min(clip, Math.max(-clip, (x[i] - s.sqrtOneMinusAlphaT * eps[i]) * s.invSqrtAlphaT));
      x[i] = s.coefX0 * x0 + s.dirCoef * eps[i];
    }
  }
  return { x0: x, forwards: steps.length };
}

/** Times a peer's forward (median after warm-ups) and one DDIM sample, as the engine's benchmark does. */
export async function timePeer(
  peer: PeerSession,
  schedule: NoiseSchedule,
  options: {
    batch: number;
    imageShape: [number, number, number];
    steps: number;
    repeats: number;
    warmup: number;
    log?: (line: string) => void;
  },
): Promise<PeerTimings & { output: Float32Array }> {
  const log = options.log ?? (() => {});
  const [c, h, w] = options.imageShape;
  const x = uniformInput(options.batch * c * h * w, 7);
  const t = new Array(options.batch).fill(500);
  log(`  ${peer.name}: first forward (shaders, caches) ...`);
  let start = performance.now();
  const output = await peer.forward(x, t);
  const firstForwardMs = performance.now() - start;
  log(`  ${peer.name}: forward: ${Math.max(0, options.warmup - 1)} more warm-up, ${options.repeats} timed ...`);
  for (let i = 1; i < options.warmup; i++) await peer.forward(x, t);
  const forwardMsAll: number[] = [];
  for (let i = 0; i < options.repeats; i++) {
    start = performance.now();
    await peer.forward(x, t);
    forwardMsAll.push(performance.now() - start);
  }
  log(`  ${peer.name}: DDIM-${options.steps} of ${options.batch} image(s), the update in JS ...`);
  start = performance.now();
  const { forwards } = await ddimWithPeer(peer, schedule, { steps: options.steps, images: options.batch, perImage: c * h * w, seed: 0 });
  const wallMs = performance.now() - start;
  return {
    firstForwardMs,
    warmup: Math.max(1, options.warmup),
    repeats: options.repeats,
    forwardMs: median(forwardMsAll),
    forwardMsAll,
    ddim: { steps: options.steps, forwards, images: options.batch, wallMs, perStepMs: wallMs / forwards },
    output,
  };
}

/** Relative L2 distance of b from a. */
export function relativeL2(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return Math.sqrt(num / den);
}
