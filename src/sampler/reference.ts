/**
 * A CPU reference of the DDIM loop, in float64, driven by any ε function instead of a network.
 * Tests use it to check the update arithmetic and the GPU sampler against it; it is not fast.
 */
import {
  ddimInversionSteps,
  type DdimStep,
  ddimStepCoefficients,
  type NoiseSchedule,
  sigmaHatStepCoefficients,
  type TimestepSpacing,
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
  return runSteps(steps, xT, eps, clipRange, options.noise);
}

/** DDIM inversion: the η = 0 ODE from the image x0 (t = −1) up to x_T at the last timestep. */
export function ddimEncodeCpu(
  schedule: NoiseSchedule,
  x0: Float32Array,
  timestepsAscending: number[],
  eps: EpsFunction,
  options: { clip?: boolean } = {},
): CpuTrajectory {
  const clipRange = options.clip ? schedule.clipSampleRange : Infinity;
  return runSteps(ddimInversionSteps(schedule, timestepsAscending), x0, eps, clipRange, undefined);
}

function runSteps(
  steps: DdimStep[],
  start: Float32Array,
  eps: EpsFunction,
  clipRange: number,
  noise: ((stepIndex: number) => Float32Array) | undefined,
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
    for (let i = 0; i < n; i++) {
      const raw = (step.x0FromX * x[i] + step.x0FromOut * e[i]) * step.x0Scale;
      const x0i = Math.min(clipRange, Math.max(-clipRange, raw));
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
