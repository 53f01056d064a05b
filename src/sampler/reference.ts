/**
 * A CPU reference of the DDIM loop, in float64, driven by any ε function instead of a network.
 * Tests use it to check the update arithmetic and the GPU sampler against it; it is not fast.
 */
import {
  ddimInversionSteps,
  type DdimStep,
  ddimStepCoefficients,
  type InversionMode,
  type NoiseSchedule,
  quantileRanks,
  sigmaHatStepCoefficients,
  type TimestepSpacing,
  torchLerp,
} from './schedule.ts';

/** The model: its output (ε, x0 or v, per the schedule) for state `x` at timestep `t`. */
export type EpsFunction = (x: Float32Array, t: number) => Float32Array;

export interface CpuSampleOptions {
  /** 0 (the default) is deterministic DDIM; 1 is DDPM's posterior noise. */
  eta?: number;
  /** z of the step with this index (0 = first step run); needed when η > 0. */
  noise?: (stepIndex: number) => Float32Array;
  /** Clip each x0 prediction to ±schedule.clipSampleRange; defaults to schedule.clipSample. */
  clip?: boolean;
  /** Picks how each step finds its previous timestep (see ddimStepCoefficients). */
  spacing?: TimestepSpacing;
  /** The paper's σ̂ sampler instead of DDIM (x0 always clipped; `noise` for every step but the last). */
  sigmaHat?: boolean;
  /** Values per image, for the schedule's dynamic thresholding (default: the whole state is one image). */
  perImage?: number;
}

export interface CpuTrajectory {
  /** The final state: the image for sampling, x_T for encoding. */
  x: Float32Array;
  /** The starting state then the state after every step (steps + 1 entries). */
  xs: Float32Array[];
  /** Each step's x0 prediction, in step order. */
  x0Preds: Float32Array[];
}

/** DDIM sampling from x_T down the given timesteps (ascending, run from the last). */
export function ddimSampleCpu(
  schedule: NoiseSchedule,
  xT: Float32Array,
  timestepsAscending: number[],
  eps: EpsFunction,
  options: CpuSampleOptions = {},
): CpuTrajectory {
  const steps = options.sigmaHat
    ? sigmaHatStepCoefficients(schedule, timestepsAscending, options.spacing)
    : ddimStepCoefficients(schedule, timestepsAscending, options.eta ?? 0, options.spacing);
  const clipRange = (options.sigmaHat || (options.clip ?? schedule.clipSample)) ? schedule.clipSampleRange : Infinity;
  const threshold = options.clip === false ? undefined : schedule.thresholding;
  return runSteps(steps, xT, eps, clipRange, options.noise, threshold && { ...threshold, perImage: options.perImage ?? xT.length });
}

/** DDIM inversion: the η = 0 ODE from the image x0 (t = −1) up to x_T at the last timestep. */
export function ddimEncodeCpu(
  schedule: NoiseSchedule,
  x0: Float32Array,
  timestepsAscending: number[],
  eps: EpsFunction,
  options: { clip?: boolean; inversion?: InversionMode } = {},
): CpuTrajectory {
  const clipRange = options.clip ? schedule.clipSampleRange : Infinity;
  return runSteps(ddimInversionSteps(schedule, timestepsAscending, options.inversion), x0, eps, clipRange, undefined);
}

function runSteps(
  steps: DdimStep[],
  start: Float32Array,
  eps: EpsFunction,
  clipRange: number,
  noise: ((stepIndex: number) => Float32Array) | undefined,
  threshold?: { ratio: number; maxValue: number; perImage: number },
): CpuTrajectory {
  const n = start.length;
  let x = Float64Array.from(start);
  const xs = [Float32Array.from(start)];
  const x0Preds: Float32Array[] = [];
  for (const [index, step] of steps.entries()) {
    const e = eps(Float32Array.from(x), step.modelTimestep);
    if (e.length !== n) throw new RangeError(`eps returned ${e.length} values for a state of ${n}`);
    let z: Float32Array | undefined;
    if (step.sigma > 0) {
      if (!noise) throw new Error(`step ${index} has σ = ${step.sigma} (η > 0) but no noise function was given`);
      z = noise(index);
      if (z.length !== n) throw new RangeError(`noise for step ${index} has ${z.length} values, not ${n}`);
    }
    const x0 = new Float64Array(n);
    const next = new Float64Array(n);
    const scales = threshold ? thresholdScales(x, e, step, threshold) : undefined;
    for (let i = 0; i < n; i++) {
      const raw = (step.x0FromX * x[i] + step.x0FromOut * e[i]) * step.x0Scale;
      const s = scales?.[Math.floor(i / threshold!.perImage)];
      const x0i = s !== undefined ? Math.min(s, Math.max(-s, raw)) / s : Math.min(clipRange, Math.max(-clipRange, raw));
      const epsI = step.epsFromX * x[i] + step.epsFromOut * e[i];
      x0[i] = x0i;
      next[i] = step.coefX0 * x0i + step.dirCoef * epsI + step.coefX * x[i] + (z ? step.sigma * z[i] : 0);
    }
    x0Preds.push(Float32Array.from(x0));
    x = next;
    xs.push(Float32Array.from(x));
  }
  return { x: xs[xs.length - 1], xs, x0Preds };
}

/** Each image's dynamic-thresholding s: clamp(quantile(|x0|, ratio), 1, maxValue), as diffusers. */
function thresholdScales(
  x: Float64Array,
  e: Float32Array,
  step: DdimStep,
  threshold: { ratio: number; maxValue: number; perImage: number },
): number[] {
  const { perImage } = threshold;
  const { lo, hi, weight } = quantileRanks(threshold.ratio, perImage);
  const scales: number[] = [];
  for (let base = 0; base < x.length; base += perImage) {
    const magnitudes = new Float32Array(perImage);
    for (let i = 0; i < perImage; i++) {
      magnitudes[i] = Math.abs((step.x0FromX * x[base + i] + step.x0FromOut * e[base + i]) * step.x0Scale);
    }
    magnitudes.sort();
    const q = torchLerp(magnitudes[lo], magnitudes[hi], weight);
    scales.push(Math.min(threshold.maxValue, Math.max(1, q)));
  }
  return scales;
}
