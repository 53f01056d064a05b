/**
 * The noise schedule of a diffusers DDPM checkpoint, DDIM timestep selection, and the per-step
 * scalars of the DDIM update (Song, Meng & Ermon 2020, eq. 12), all in float64 so the GPU update
 * shader only multiplies and adds.
 */

export interface NoiseSchedule {
  numTrainTimesteps: number;
  /** ᾱ_t for t = 0..T−1: the float32-rounded values diffusers holds, kept as float64. */
  alphasCumprod: Float64Array;
  clipSample: boolean;
  clipSampleRange: number;
  /** What the model outputs: the noise ε, the clean sample x0, or v = √ᾱ·ε − √(1−ᾱ)·x0. */
  predictionType: PredictionType;
  /** ᾱ past the last step (diffusers' `set_alpha_to_one`: 1, else ᾱ_0); also where inversion starts. */
  finalAlphaCumprod: number;
  /** diffusers' `steps_offset`, added to `leading` timesteps. */
  stepsOffset: number;
  /** The config's `timestep_spacing`, when it names one: the default spacing for this model. */
  timestepSpacing?: TimestepSpacing;
  /**
   * Dynamic thresholding (`thresholding: true`), which replaces clipping: per image s =
   * clamp(quantile(|x0|, ratio), 1, maxValue), then x0 = clamp(x0, ±s) / s.
   */
  thresholding?: { ratio: number; maxValue: number };
}

export type PredictionType = 'epsilon' | 'sample' | 'v_prediction';
const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'sample', 'v_prediction'];

/** A scheduler configuration the engine cannot follow; the message names the option. */
export class ScheduleError extends Error {
  override name = 'ScheduleError';
}

type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
const BETA_SCHEDULES: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2'];

/**
 * Reads a diffusers `scheduler_config.json` (DDPMScheduler or DDIMScheduler fields). Options the
 * config leaves out take diffusers' defaults, so `undefined` is `DDPMScheduler()`: linear betas
 * 1e-4..0.02 over 1000 steps, `clip_sample` true with range 1.
 *
 * DDIMScheduler's own options are read as diffusers reads them: `prediction_type`,
 * `set_alpha_to_one`, `steps_offset`, `timestep_spacing` (then the default spacing; the caller may
 * pick another), `clip_sample` and `clip_sample_range`, `thresholding` with
 * `dynamic_thresholding_ratio` and `sample_max_value`.
 */
export function scheduleFromConfig(config: Record<string, unknown> | undefined): NoiseSchedule {
  const c = config ?? {};
  const predictionType = c.prediction_type ?? 'epsilon';
  if (!PREDICTION_TYPES.includes(predictionType as PredictionType)) {
    throw new ScheduleError(
      `prediction_type '${String(predictionType)}' is not supported: use one of ${PREDICTION_TYPES.join(', ')}`,
    );
  }
  const thresholding = readBoolean(c, 'thresholding', false);
  const ratio = readNumber(c, 'dynamic_thresholding_ratio', 0.995);
  const maxValue = readNumber(c, 'sample_max_value', 1);
  if (thresholding && !(ratio > 0 && ratio <= 1)) throw new ScheduleError(`dynamic_thresholding_ratio must be in (0, 1], got ${ratio}`);
  if (thresholding && !(maxValue >= 1)) throw new ScheduleError(`sample_max_value must be at least 1, got ${maxValue}`);
  const setAlphaToOne = readBoolean(c, 'set_alpha_to_one', true);
  const stepsOffset = readNumber(c, 'steps_offset', 0);
  if (!Number.isInteger(stepsOffset) || stepsOffset < 0) {
    throw new ScheduleError(`steps_offset must be an integer ≥ 0, got ${stepsOffset}`);
  }
  const spacing = c.timestep_spacing;
  if (spacing !== undefined && spacing !== null && !DIFFUSERS_SPACINGS.includes(spacing as TimestepSpacing)) {
    throw new ScheduleError(`timestep_spacing '${String(spacing)}' is not supported: use one of ${DIFFUSERS_SPACINGS.join(', ')}`);
  }
  if (c.rescale_betas_zero_snr === true) {
    throw new ScheduleError(
      'rescale_betas_zero_snr is not supported: it makes ᾱ reach 0, where an epsilon model cannot give x0',
    );
  }
  const clipSample = readBoolean(c, 'clip_sample', true);
  const clipSampleRange = readNumber(c, 'clip_sample_range', 1);
  if (!(clipSampleRange > 0)) throw new ScheduleError(`clip_sample_range must be positive, got ${clipSampleRange}`);

  let betas: Float64Array;
  const trained = c.trained_betas;
  if (trained !== undefined && trained !== null) {
    betas = trainedBetas(trained, c.num_train_timesteps);
  } else {
    const numTrainTimesteps = readNumber(c, 'num_train_timesteps', 1000);
    if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 1) {
      throw new ScheduleError(`num_train_timesteps must be a positive integer, got ${numTrainTimesteps}`);
    }
    const schedule = c.beta_schedule ?? 'linear';
    if (!BETA_SCHEDULES.includes(schedule as BetaSchedule)) {
      throw new ScheduleError(
        `beta_schedule '${String(schedule)}' is not supported: use one of ${BETA_SCHEDULES.join(', ')}`,
      );
    }
    const betaStart = readNumber(c, 'beta_start', 0.0001);
    const betaEnd = readNumber(c, 'beta_end', 0.02);
    betas = makeBetas(schedule as BetaSchedule, betaStart, betaEnd, numTrainTimesteps);
  }
  for (const [t, beta] of betas.entries()) {
    // β = 1 (ᾱ = 0 from there on, as the paper's 'jsd' schedule ends) is accepted: sampling refuses
    // only the timesteps where the model's prediction type gives no x0.
    if (!(beta > 0 && beta <= 1)) throw new ScheduleError(`beta at timestep ${t} is ${beta}: betas must lie in (0, 1]`);
  }
  const alphasCumprod = cumprodOfAlphas(betas);
  const schedule: NoiseSchedule = {
    numTrainTimesteps: betas.length,
    alphasCumprod,
    clipSample,
    clipSampleRange,
    predictionType: predictionType as PredictionType,
    finalAlphaCumprod: setAlphaToOne ? 1 : alphasCumprod[0],
    stepsOffset,
  };
  if (spacing !== undefined && spacing !== null) schedule.timestepSpacing = spacing as TimestepSpacing;
  if (thresholding) schedule.thresholding = { ratio, maxValue };
  return schedule;
}

function readNumber(c: Record<string, unknown>, key: string, fallback: number): number {
  const v = c[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ScheduleError(`${key} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function readBoolean(c: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = c[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ScheduleError(`${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function trainedBetas(trained: unknown, declaredSteps: unknown): Float64Array {
  if (!Array.isArray(trained) || trained.length === 0 || !trained.every((b) => typeof b === 'number')) {
    throw new ScheduleError('trained_betas must be a non-empty array of numbers');
  }
  if (typeof declaredSteps === 'number' && declaredSteps !== trained.length) {
    throw new ScheduleError(
      `trained_betas has ${trained.length} values but num_train_timesteps is ${declaredSteps}`,
    );
  }
  // diffusers: torch.tensor(trained_betas, dtype=torch.float32)
  return Float64Array.from(trained as number[], (b) => Math.fround(b));
}

/**
 * Betas as diffusers stores them: float32. Each value is computed in float64 and rounded once.
 * For `linear` this is exactly how the golden `alphas_cumprod` was made (float64 linspace cast to
 * float32). diffusers itself calls torch.linspace in float32, which rounds its own way: emulating
 * torch's float32 linspace moves about a third of the betas by one ulp, which changes ᾱ by at
 * most 5e-10, far below anything a float32 sampler sees.
 */
function makeBetas(schedule: BetaSchedule, betaStart: number, betaEnd: number, steps: number): Float64Array {
  const betas = new Float64Array(steps);
  switch (schedule) {
    case 'linear':
      for (let t = 0; t < steps; t++) betas[t] = Math.fround(linspaceAt(betaStart, betaEnd, steps, t));
      break;
    case 'scaled_linear': {
      // diffusers: torch.linspace(beta_start**0.5, beta_end**0.5, T) ** 2
      const a = Math.sqrt(betaStart);
      const b = Math.sqrt(betaEnd);
      for (let t = 0; t < steps; t++) betas[t] = Math.fround(linspaceAt(a, b, steps, t) ** 2);
      break;
    }
    case 'squaredcos_cap_v2': {
      // diffusers' betas_for_alpha_bar (cosine schedule, Nichol & Dhariwal 2021), max_beta 0.999,
      // computed with Python floats (float64), then torch.tensor(..., float32).
      const alphaBar = (x: number) => Math.cos(((x + 0.008) / 1.008) * Math.PI / 2) ** 2;
      for (let i = 0; i < steps; i++) {
        const beta = 1 - alphaBar((i + 1) / steps) / alphaBar(i / steps);
        betas[i] = Math.fround(Math.min(beta, 0.999));
      }
      break;
    }
  }
  return betas;
}

/** Element i of numpy.linspace(start, stop, n): start + i·step, with the last one exactly stop. */
function linspaceAt(start: number, stop: number, n: number, i: number): number {
  if (n === 1) return start;
  if (i === n - 1) return stop;
  return i * ((stop - start) / (n - 1)) + start;
}

/**
 * ᾱ_t = Π(1 − β) as diffusers computes it on the CPU, which matches the golden `alphas_cumprod`
 * bit for bit (all 1000 values): α = 1 − β in float32 (Math.fround of the float64 difference is
 * the correctly rounded float32 subtraction), then torch.cumprod, whose CPU kernel keeps the
 * running product in float64 (ATen's accumulate type for float) and rounds only what it stores.
 * Rounding α in float64 instead, or accumulating in float32, misses by up to 3e-7.
 */
function cumprodOfAlphas(betas: Float64Array): Float64Array {
  const alphasCumprod = new Float64Array(betas.length);
  let product = 1;
  for (let t = 0; t < betas.length; t++) {
    product *= Math.fround(1 - betas[t]);
    alphasCumprod[t] = Math.fround(product);
  }
  return alphasCumprod;
}

export type TimestepSpacing = 'uniform' | 'quad' | 'leading' | 'trailing' | 'linspace';
/** The spacings of diffusers' DDIMScheduler: their steps go from t to t − T // S, as diffusers steps. */
const DIFFUSERS_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];

/**
 * The timesteps a DDIM run visits, ascending (it runs them from the last to the first).
 *
 * - `uniform`: the paper's `range(0, T, T // S)`. When S does not divide T this yields more than
 *   S timesteps (T = 1000, S = 3 gives 0, 333, 666, 999), as the paper's code does.
 * - `quad`: the paper's `int(linspace(0, √(0.8·T), S)²)`. Small timesteps can repeat (S = 50
 *   starts 0, 0); they are kept, as in the golden runs, and a repeated step changes nothing.
 * - `leading`, `trailing`, `linspace`: diffusers' DDIMScheduler.set_timesteps; `stepsOffset`
 *   (the config's `steps_offset`) is added to `leading` only, as there.
 */
export function ddimTimesteps(steps: number, spacing: TimestepSpacing, numTrainTimesteps = 1000, stepsOffset = 0): number[] {
  const T = numTrainTimesteps;
  if (!Number.isInteger(T) || T < 1) throw new ScheduleError(`numTrainTimesteps must be a positive integer, got ${T}`);
  if (!Number.isInteger(steps) || steps < 1 || steps > T) {
    throw new ScheduleError(`the number of DDIM steps must be an integer from 1 to ${T} (the training timesteps), got ${steps}`);
  }
  const S = steps;
  const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
  switch (spacing) {
    case 'uniform': {
      const skip = Math.floor(T / S);
      return range(Math.ceil(T / skip), (i) => i * skip);
    }
    case 'quad': {
      const top = Math.sqrt(T * 0.8);
      return range(S, (i) => Math.floor(linspaceAt(0, top, S, i) ** 2));
    }
    case 'leading': {
      // (np.arange(0, S) * (T // S)).round()[::-1]
      const ratio = Math.floor(T / S);
      return range(S, (i) => i * ratio + stepsOffset);
    }
    case 'trailing':
      return trailingTimesteps(S, T);
    case 'linspace':
      // np.linspace(0, T - 1, S).round()[::-1]: numpy rounds halves to even.
      return range(S, (i) => roundHalfToEven(linspaceAt(0, T - 1, S, i)));
    default:
      throw new ScheduleError(`timestep spacing '${String(spacing)}' is unknown: use uniform, quad, leading, trailing or linspace`);
  }
}

/**
 * diffusers: np.round(np.arange(T, 0, -T / S)) - 1. numpy's arange has ceil((0 − T)/step)
 * elements and fills element i with start + i·(second − start), where second = start + step.
 */
function trailingTimesteps(S: number, T: number): number[] {
  const step = -T / S;
  const length = Math.ceil(-T / step);
  const delta = (T + step) - T;
  const descending = Array.from({ length }, (_, i) => roundHalfToEven(T + i * delta) - 1);
  return descending.reverse();
}

function roundHalfToEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The scalars of one update, from the state x at ᾱ(t) to the state at ᾱ(tPrev), given the model's
 * output m (ε, x0 or v, per the schedule's prediction type):
 *   x0 = (x0FromX·x + x0FromOut·m)·x0Scale                  (optionally clipped)
 *   ε  = epsFromX·x + epsFromOut·m
 *   x' = coefX0·x0 + dirCoef·ε + coefX·x + sigma·z
 * DDIM (eq. 12) has coefX = 0; the paper's σ̂ sampler (the posterior mean) has dirCoef = 0. For an
 * ε model x0 = (x − √(1−ᾱ)·m)/√ᾱ exactly as before. Sampling and inversion share it, so one GPU
 * shader does all: "prev" is the state the step produces, which in inversion is the noisier one.
 */
export interface DdimStep {
  /** Timestep of the current state; −1 is the clean image (ᾱ = 1). */
  t: number;
  /** Timestep of the state this step produces; −1 at the end of sampling (ᾱ = 1). */
  tPrev: number;
  /** The timestep the model is given with the current state to predict ε. */
  modelTimestep: number;
  alphaT: number;
  alphaPrev: number;
  invSqrtAlphaT: number;
  sqrtOneMinusAlphaT: number;
  x0FromX: number;
  x0FromOut: number;
  x0Scale: number;
  epsFromX: number;
  epsFromOut: number;
  /** √ᾱ(tPrev), the weight of the x0 prediction (DDIM). */
  coefX0: number;
  /** √(1 − ᾱ(tPrev) − σ²), the weight of ε ("direction pointing to x_t"). */
  dirCoef: number;
  /** The weight of the current state itself (σ̂'s posterior mean; 0 in DDIM). */
  coefX: number;
  /** σ = η·√((1 − ᾱ')/(1 − ᾱ))·√(1 − ᾱ/ᾱ'), the weight of fresh noise z. */
  sigma: number;
}

/** ᾱ at t; t < 0 is past the last step: 1, or ᾱ_0 with `set_alpha_to_one: false`. */
function alphaAt(schedule: NoiseSchedule, t: number): number {
  if (t < 0 && Number.isInteger(t)) return schedule.finalAlphaCumprod ?? 1;
  if (!Number.isInteger(t) || t < 0 || t >= schedule.numTrainTimesteps) {
    throw new ScheduleError(`timestep ${t} is outside 0..${schedule.numTrainTimesteps - 1}`);
  }
  return schedule.alphasCumprod[t];
}

function checkAscending(timesteps: number[]): void {
  if (timesteps.length === 0) throw new ScheduleError('no timesteps were given');
  for (let i = 1; i < timesteps.length; i++) {
    if (timesteps[i] < timesteps[i - 1]) {
      throw new ScheduleError(`timesteps must be ascending, but ${timesteps[i]} follows ${timesteps[i - 1]}`);
    }
  }
}

/** How x0 and ε follow from x and the model output at ᾱ, as diffusers' DDIMScheduler.step. */
function predictionCoefficients(type: PredictionType, alphaT: number) {
  const sqrtAlpha = Math.sqrt(alphaT);
  const sqrtBeta = Math.sqrt(1 - alphaT);
  switch (type) {
    case 'epsilon':
      if (sqrtAlpha === 0) {
        throw new ScheduleError(
          'a timestep with ᾱ = 0 (beta = 1, as the jsd schedule ends) gives an epsilon model no x0: pick steps and a spacing that stop short of it (leading does)',
        );
      }
      return { x0FromX: 1, x0FromOut: -sqrtBeta, x0Scale: 1 / sqrtAlpha, epsFromX: 0, epsFromOut: 1 };
    case 'sample':
      // ε = (x − √ᾱ·x0)/√(1−ᾱ): undefined at ᾱ = 1 (inversion from the clean image with set_alpha_to_one).
      if (sqrtBeta === 0) {
        throw new ScheduleError(
          "prediction_type 'sample' gives no ε where ᾱ = 1, where the paper's inversion starts: use inversion 'diffusers' with set_alpha_to_one false",
        );
      }
      return { x0FromX: 0, x0FromOut: 1, x0Scale: 1, epsFromX: 1 / sqrtBeta, epsFromOut: -sqrtAlpha / sqrtBeta };
    case 'v_prediction':
      return { x0FromX: sqrtAlpha, x0FromOut: -sqrtBeta, x0Scale: 1, epsFromX: sqrtBeta, epsFromOut: sqrtAlpha };
  }
}

function makeStep(
  schedule: NoiseSchedule,
  t: number,
  tPrev: number,
  modelTimestep: number,
  eta: number,
  /** ᾱ of the current state when it is not the schedule's at t (the paper's inversion starts at 1). */
  alphaTGiven?: number,
): DdimStep {
  const alphaT = alphaTGiven ?? alphaAt(schedule, t);
  const alphaPrev = alphaAt(schedule, tPrev);
  // Equal ᾱ (a repeated quad timestep) or ᾱ' = 1 gives σ = 0 without dividing by zero.
  const sigma = eta === 0 || alphaPrev === alphaT || alphaT === 1
    ? 0
    : eta * Math.sqrt((1 - alphaPrev) / (1 - alphaT)) * Math.sqrt(Math.max(0, 1 - alphaT / alphaPrev));
  return {
    t,
    tPrev,
    modelTimestep,
    alphaT,
    alphaPrev,
    invSqrtAlphaT: 1 / Math.sqrt(alphaT),
    sqrtOneMinusAlphaT: Math.sqrt(1 - alphaT),
    ...predictionCoefficients(schedule.predictionType ?? 'epsilon', alphaT),
    coefX0: Math.sqrt(alphaPrev),
    // Rounding can leave 1 − ᾱ' − σ² a hair below zero when η = 1 and ᾱ' is near 1.
    dirCoef: Math.sqrt(Math.max(0, 1 - alphaPrev - sigma * sigma)),
    coefX: 0,
    sigma,
  };
}

/**
 * The timestep each sampling step goes to. The paper's spacings (`uniform`, `quad`) go to the
 * previous element of the list; diffusers' (`leading`, `trailing`, `linspace`) to t − T // S, as
 * DDIMScheduler.step does (the same for leading and trailing; not for linspace, whose elements
 * are not T // S apart).
 */
function previousTimesteps(timestepsAscending: number[], spacing: TimestepSpacing | undefined, T: number): number[] {
  if (spacing !== undefined && DIFFUSERS_SPACINGS.includes(spacing)) {
    const ratio = Math.floor(T / timestepsAscending.length);
    return timestepsAscending.map((t) => t - ratio);
  }
  return timestepsAscending.map((_, i) => (i > 0 ? timestepsAscending[i - 1] : -1));
}

/**
 * Sampling steps in run order: from the last timestep down, each going to the previous one (see
 * previousTimesteps), the last one past t = 0 (ᾱ = 1, or ᾱ_0 without set_alpha_to_one). η = 0 is
 * DDIM's deterministic ODE, η = 1 DDPM's posterior.
 */
export function ddimStepCoefficients(
  schedule: NoiseSchedule,
  timestepsAscending: number[],
  eta: number,
  spacing?: TimestepSpacing,
): DdimStep[] {
  checkAscending(timestepsAscending);
  if (!(eta >= 0) || !Number.isFinite(eta)) throw new ScheduleError(`eta must be a finite number ≥ 0, got ${eta}`);
  const prev = previousTimesteps(timestepsAscending, spacing, schedule.numTrainTimesteps);
  const steps: DdimStep[] = [];
  for (let i = timestepsAscending.length - 1; i >= 0; i--) {
    const t = timestepsAscending[i];
    steps.push(makeStep(schedule, t, Math.max(prev[i], -1), t, eta));
  }
  return steps;
}

/**
 * The paper's σ̂ sampler (Table 1's last row; `ddpm_steps` of its code, "DDPM with the larger
 * variance"): x0 clamped to ±clip_sample_range (1 by default), the posterior mean
 *   x' = (√ᾱ'·β·x0 + √(1−β)·(1−ᾱ')·x) / (1 − ᾱ),   β = 1 − ᾱ/ᾱ',
 * plus √β·z except on the last step. The steps and model timesteps are the DDIM ones.
 */
export function sigmaHatStepCoefficients(schedule: NoiseSchedule, timestepsAscending: number[], spacing?: TimestepSpacing): DdimStep[] {
  const steps = ddimStepCoefficients(schedule, timestepsAscending, 0, spacing);
  return steps.map((s, k) => {
    const beta = 1 - s.alphaT / s.alphaPrev;
    const last = k === steps.length - 1;
    return {
      ...s,
      coefX0: (Math.sqrt(s.alphaPrev) * beta) / (1 - s.alphaT),
      dirCoef: 0,
      coefX: (Math.sqrt(1 - beta) * (1 - s.alphaPrev)) / (1 - s.alphaT),
      // A repeated timestep has β = 0: the step changes nothing.
      sigma: last ? 0 : Math.sqrt(Math.max(0, beta)),
    };
  });
}

/**
 * How inversion evaluates the model. 'paper': the DDIM paper's code, from the clean image at ᾱ = 1
 * (ᾱ(−1) = 1 whatever set_alpha_to_one says), ε at the current state and its own timestep.
 * 'diffusers': diffusers' DDIMInverseScheduler (its inversion-based pipelines), from its initial ᾱ
 * (1, or ᾱ_0 with set_alpha_to_one false), ε at the current state but the timestep the step moves
 * to, the current state's ᾱ taken at min(t − T/S, T − 1), for S steps of a schedule of T.
 */
export type InversionMode = 'paper' | 'diffusers';
export const INVERSION_MODES: readonly InversionMode[] = ['paper', 'diffusers'];

/**
 * DDIM inversion (encoding an image into its x_T): the η = 0 ODE run forward from the image (t =
 * −1) up the same timesteps, with the schedule's prediction type. 'paper': from ᾱ = 1, each step
 * evaluates the model at the current state with timestep max(t, 0), then moves to ᾱ of the next
 * timestep: −1 → ts[0] → … → ts[last]. 'diffusers': as DDIMInverseScheduler.step does (see
 * InversionMode).
 */
export function ddimInversionSteps(schedule: NoiseSchedule, timestepsAscending: number[], mode: InversionMode = 'paper'): DdimStep[] {
  checkAscending(timestepsAscending);
  const steps: DdimStep[] = [];
  if (mode === 'diffusers') {
    const T = schedule.numTrainTimesteps;
    const stride = Math.floor(T / timestepsAscending.length);
    for (const tNext of timestepsAscending) {
      const current = Math.min(tNext - stride, T - 1);
      steps.push(makeStep(schedule, current >= 0 ? current : -1, tNext, tNext, 0));
    }
    return steps;
  }
  let t = -1;
  for (const tNext of timestepsAscending) {
    steps.push(makeStep(schedule, t, tNext, Math.max(t, 0), 0, t < 0 ? 1 : undefined));
    t = tNext;
  }
  return steps;
}

/**
 * Spherical interpolation between two latents, each taken whole as one vector (all C·H·W values
 * of one image): θ = arccos(a·b / (|a||b|)), result = (sin((1−α)θ)·a + sin(αθ)·b) / sin θ, in
 * float64. The magnitudes are not normalised. This matches the golden `slerp.xT` (between xT[0]
 * and xT[1]) to one float32 ulp; about two thirds of the values agree exactly, the rest differ
 * because the golden interpolated its float64 latents before they were stored as float32.
 * Nearly parallel latents (sin θ ≈ 0) fall back to linear interpolation.
 */
export function slerp(a: Float32Array, b: Float32Array, alpha: number): Float32Array {
  if (a.length !== b.length) throw new RangeError(`slerp needs latents of one size, got ${a.length} and ${b.length}`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  const cosTheta = Math.min(1, Math.max(-1, dot / Math.sqrt(normA * normB)));
  const theta = Math.acos(cosTheta);
  const sinTheta = Math.sin(theta);
  let wa = 1 - alpha;
  let wb = alpha;
  if (sinTheta > 1e-6) {
    wa = Math.sin((1 - alpha) * theta) / sinTheta;
    wb = Math.sin(alpha * theta) / sinTheta;
  }
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = wa * a[i] + wb * b[i];
  return out;
}

/**
 * Where torch.quantile(|x0|, ratio) of n values reads: the order statistics lo and hi (0 = the
 * smallest) and the weight between them, computed in float32 as torch does for a float32 tensor.
 */
export function quantileRanks(ratio: number, n: number): { lo: number; hi: number; weight: number } {
  const position = Math.fround(Math.fround(ratio) * (n - 1));
  const lo = Math.floor(position);
  return { lo, hi: Math.ceil(position), weight: Math.fround(position - lo) };
}

/** torch.lerp(start, end, weight), which switches formula at weight 0.5 for accuracy. */
export function torchLerp(start: number, end: number, weight: number): number {
  return weight < 0.5 ? start + weight * (end - start) : end - (end - start) * (1 - weight);
}
