import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSafetensors, toFloat32 } from '../src/io/safetensors.ts';
import { philoxNormals } from '../src/sampler/noise.ts';
import { ddimEncodeCpu, ddimSampleCpu, type EpsFunction } from '../src/sampler/reference.ts';
import {
  ddimInversionSteps,
  ddimStepCoefficients,
  ddimTimesteps,
  type NoiseSchedule,
  ScheduleError,
  scheduleFromConfig,
  slerp,
} from '../src/sampler/schedule.ts';

const GOLDEN_DIR = '../shared/golden';
const golden = parseSafetensors(new Uint8Array(readFileSync(`${GOLDEN_DIR}/emoji32_ddim.safetensors`)));
const meta = JSON.parse(readFileSync(`${GOLDEN_DIR}/meta.json`, 'utf8')).emoji32;
const emojiConfig = JSON.parse(readFileSync('../shared/models/emoji32/scheduler_config.json', 'utf8'));

function goldenTensor(name: string): { data: Float32Array; shape: number[] } {
  const entry = golden.tensors.get(name);
  if (!entry) throw new Error(`golden tensor ${name} is missing`);
  return { data: toFloat32(entry), shape: entry.shape };
}

/** Item `index` of a tensor's first axis. */
function item(t: { data: Float32Array; shape: number[] }, index: number): Float32Array {
  const size = t.data.length / t.shape[0];
  return t.data.subarray(index * size, (index + 1) * size);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'lengths differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function throwsScheduleError(fn: () => unknown, mentions: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ScheduleError);
    assert.ok((e as Error).message.includes(mentions), `"${(e as Error).message}" should mention ${mentions}`);
    return;
  }
  assert.unreachable(`expected a ScheduleError mentioning ${mentions}`);
}

const schedule = suite('schedule');

schedule('linear alphas_cumprod matches the golden bit for bit', () => {
  const ref = goldenTensor('alphas_cumprod').data;
  for (const [label, config] of [['emoji32 scheduler_config.json', emojiConfig], ['no config', undefined]] as const) {
    const s = scheduleFromConfig(config);
    assert.is(s.numTrainTimesteps, 1000);
    let maxAbs = 0;
    let maxRel = 0;
    let exact = 0;
    for (let t = 0; t < 1000; t++) {
      const d = Math.abs(s.alphasCumprod[t] - ref[t]);
      maxAbs = Math.max(maxAbs, d);
      maxRel = Math.max(maxRel, d / ref[t]);
      if (d === 0) exact++;
    }
    console.log(
      `    alphas_cumprod (${label}): ${exact}/1000 exact, max abs ${maxAbs.toExponential(2)}, max rel ${maxRel.toExponential(2)}`,
    );
    assert.is(exact, 1000);
  }
});

schedule('config options and diffusers defaults', () => {
  const emoji = scheduleFromConfig(emojiConfig);
  assert.is(emoji.clipSample, false);
  assert.is(emoji.predictionType, 'epsilon');
  const defaults = scheduleFromConfig(undefined);
  assert.is(defaults.clipSample, true, 'DDPMScheduler() clips by default');
  assert.is(defaults.clipSampleRange, 1);
  assert.is(scheduleFromConfig({ clip_sample_range: 2.5 }).clipSampleRange, 2.5);
  assert.is(scheduleFromConfig({ prediction_type: 'v_prediction' }).predictionType, 'v_prediction');
  assert.is(scheduleFromConfig({ prediction_type: 'sample' }).predictionType, 'sample');
  throwsScheduleError(() => scheduleFromConfig({ prediction_type: 'flow' }), 'prediction_type');
  throwsScheduleError(() => scheduleFromConfig({ beta_schedule: 'sigmoid' }), 'beta_schedule');
  throwsScheduleError(() => scheduleFromConfig({ num_train_timesteps: 0 }), 'num_train_timesteps');
  throwsScheduleError(() => scheduleFromConfig({ beta_end: '0.02' }), 'beta_end');
  assert.equal(scheduleFromConfig({ thresholding: true }).thresholding, { ratio: 0.995, maxValue: 1 });
  throwsScheduleError(() => scheduleFromConfig({ thresholding: true, dynamic_thresholding_ratio: 0 }), 'dynamic_thresholding_ratio');
  throwsScheduleError(() => scheduleFromConfig({ thresholding: true, sample_max_value: 0.5 }), 'sample_max_value');
  throwsScheduleError(() => scheduleFromConfig({ rescale_betas_zero_snr: true }), 'rescale_betas_zero_snr');
  throwsScheduleError(() => scheduleFromConfig({ beta_start: 0.5, beta_end: 1.5 }), 'betas must lie in (0, 1]');
});

schedule('scaled_linear, squaredcos_cap_v2 and trained_betas', () => {
  // Stable Diffusion's schedule: β = linspace(√0.00085, √0.012)², so the ends are the config's.
  const sd = scheduleFromConfig({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 });
  assert.is(sd.alphasCumprod[0], Math.fround(1 - Math.fround(0.00085)));
  const lastBeta = 1 - sd.alphasCumprod[999] / sd.alphasCumprod[998];
  assert.ok(Math.abs(lastBeta - 0.012) < 1e-5, `last beta ${lastBeta}`);
  const midBeta = 1 - sd.alphasCumprod[500] / sd.alphasCumprod[499];
  const expectedMid = (Math.sqrt(0.00085) + (500 / 999) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2;
  assert.ok(Math.abs(midBeta - expectedMid) < 1e-5, `mid beta ${midBeta} vs ${expectedMid}`);

  // The cosine schedule: ᾱ_t ≈ f((t + 1)/T) / f(0) with f(x) = cos²((x + 0.008)/1.008 · π/2), until
  // betas reach the 0.999 cap at the very end.
  const cosine = scheduleFromConfig({ beta_schedule: 'squaredcos_cap_v2' });
  const f = (x: number) => Math.cos(((x + 0.008) / 1.008) * Math.PI / 2) ** 2;
  let worst = 0;
  for (let t = 0; t < 990; t++) worst = Math.max(worst, Math.abs(cosine.alphasCumprod[t] - f((t + 1) / 1000) / f(0)));
  console.log(`    squaredcos_cap_v2: max |ᾱ − f(t+1)/f(0)| over t < 990 = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5);
  const cappedBeta = 1 - cosine.alphasCumprod[999] / cosine.alphasCumprod[998];
  assert.ok(Math.abs(cappedBeta - 0.999) < 1e-4, `last cosine beta ${cappedBeta} should be capped at 0.999`);

  const trained = scheduleFromConfig({ trained_betas: [0.1, 0.2, 0.5], num_train_timesteps: 3 });
  assert.is(trained.numTrainTimesteps, 3);
  const a = [0.9, 0.8, 0.5].map(Math.fround);
  assert.is(trained.alphasCumprod[2], Math.fround(a[0] * a[1] * a[2]));
  throwsScheduleError(() => scheduleFromConfig({ trained_betas: [0.1, 0.2], num_train_timesteps: 1000 }), 'num_train_timesteps');
});

schedule("timesteps: the paper's uniform and quad match meta.json", () => {
  assert.equal(ddimTimesteps(10, 'uniform'), meta.timesteps10);
  assert.equal(ddimTimesteps(50, 'quad'), meta.quad50);
  assert.equal(ddimTimesteps(10, 'quad').slice(-1), [800]);
  // range(0, 1000, 1000 // 3) has four elements, as in the paper's code.
  assert.equal(ddimTimesteps(3, 'uniform'), [0, 333, 666, 999]);
  assert.equal(ddimTimesteps(1, 'uniform'), [0]);
  assert.equal(ddimTimesteps(1, 'quad'), [0]);
});

schedule('timesteps: diffusers leading, trailing, linspace', () => {
  // leading: np.arange(0, S) * (T // S); diffusers' own run of the golden used these.
  assert.equal(ddimTimesteps(10, 'leading'), [...meta.diffusers_timesteps10].reverse());
  assert.equal(ddimTimesteps(3, 'leading'), [0, 333, 666]);
  // trailing: np.round(np.arange(T, 0, -T / S)) - 1.
  //   S = 10: 1000, 900, …, 100 minus 1.   S = 3: 1000, 666.67, 333.33 → 1000, 667, 333 → minus 1.
  //   S = 7: 1000 − k·142.857… → 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86 → rounded, minus 1.
  assert.equal(ddimTimesteps(10, 'trailing'), [99, 199, 299, 399, 499, 599, 699, 799, 899, 999]);
  assert.equal(ddimTimesteps(3, 'trailing'), [332, 666, 999]);
  assert.equal(ddimTimesteps(7, 'trailing'), [142, 285, 428, 570, 713, 856, 999]);
  // linspace: np.linspace(0, T − 1, S).round(); numpy rounds halves to even.
  //   S = 10: k·111 exactly.   S = 4: 0, 333, 666, 999.
  //   T = 998, S = 3: 0, 498.5, 997 → 498.5 rounds to 498.   T = 996, S = 3: 497.5 → 498.
  assert.equal(ddimTimesteps(10, 'linspace'), [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]);
  assert.equal(ddimTimesteps(4, 'linspace'), [0, 333, 666, 999]);
  assert.equal(ddimTimesteps(3, 'linspace', 998), [0, 498, 997]);
  assert.equal(ddimTimesteps(3, 'linspace', 996), [0, 498, 995]);
  assert.equal(ddimTimesteps(1000, 'trailing'), Array.from({ length: 1000 }, (_, i) => i));
});

schedule('timesteps: the step count is validated', () => {
  throwsScheduleError(() => ddimTimesteps(0, 'uniform'), 'from 1 to 1000');
  throwsScheduleError(() => ddimTimesteps(1001, 'leading'), 'from 1 to 1000');
  throwsScheduleError(() => ddimTimesteps(2.5, 'quad'), 'from 1 to 1000');
  throwsScheduleError(() => ddimTimesteps(10, 'cosine' as never), 'cosine');
});

const linear = scheduleFromConfig(emojiConfig);

schedule('coefficients: run order, η = 0 and the final step to ᾱ = 1', () => {
  const ts = ddimTimesteps(10, 'uniform');
  const steps = ddimStepCoefficients(linear, ts, 0);
  assert.equal(steps.map((s) => s.t), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.equal(steps.map((s) => s.tPrev), [800, 700, 600, 500, 400, 300, 200, 100, 0, -1]);
  assert.equal(steps.map((s) => s.modelTimestep), steps.map((s) => s.t));
  for (const s of steps) assert.is(s.sigma, 0);
  const last = steps[steps.length - 1];
  assert.is(last.alphaPrev, 1);
  assert.is(last.coefX0, 1);
  assert.is(last.dirCoef, 0);
  const first = steps[0];
  assert.ok(Math.abs(first.invSqrtAlphaT * Math.sqrt(linear.alphasCumprod[900]) - 1) < 1e-15);
  assert.ok(Math.abs(first.dirCoef - Math.sqrt(1 - linear.alphasCumprod[800])) < 1e-15);
  assert.throws(() => ddimStepCoefficients(linear, [5, 3], 0), /ascending/);
  assert.throws(() => ddimStepCoefficients(linear, [0, 1000], 0), /outside/);
  assert.throws(() => ddimStepCoefficients(linear, ts, -1), /eta/);
});

schedule('coefficients: η = 1 over all 1000 steps is the DDPM posterior', () => {
  const ts = ddimTimesteps(1000, 'uniform');
  const steps = ddimStepCoefficients(linear, ts, 1);
  let worst = 0;
  for (const s of steps) {
    // diffusers DDPMScheduler._get_variance: β̃ = (1 − ᾱ_prev)/(1 − ᾱ_t) · β_t, β_t = 1 − ᾱ_t/ᾱ_prev.
    const beta = 1 - s.alphaT / s.alphaPrev;
    const posteriorVariance = ((1 - s.alphaPrev) / (1 - s.alphaT)) * beta;
    worst = Math.max(worst, Math.abs(s.sigma * s.sigma - posteriorVariance) / Math.max(posteriorVariance, 1e-300));
    // The update keeps the marginal noise level: dir² + σ² = 1 − ᾱ_prev.
    assert.ok(Math.abs(s.dirCoef ** 2 + s.sigma ** 2 - (1 - s.alphaPrev)) < 1e-12);
  }
  console.log(`    η = 1: max relative |σ² − β̃| = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-9);
  // Written in x_t and x0 (through ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t)), the η = 1 mean is DDPM's
  // posterior mean: √ᾱ_prev·β_t/(1 − ᾱ_t)·x0 + √α_t·(1 − ᾱ_prev)/(1 − ᾱ_t)·x_t.
  for (const s of [steps[1], steps[500], steps[998]]) {
    const beta = 1 - s.alphaT / s.alphaPrev;
    const ddpmCoefXt = (Math.sqrt(1 - beta) * (1 - s.alphaPrev)) / (1 - s.alphaT);
    const ddpmCoefX0 = (Math.sqrt(s.alphaPrev) * beta) / (1 - s.alphaT);
    const ddimCoefXt = s.dirCoef / s.sqrtOneMinusAlphaT;
    const ddimCoefX0 = s.coefX0 - (s.dirCoef * Math.sqrt(s.alphaT)) / s.sqrtOneMinusAlphaT;
    assert.ok(Math.abs(ddimCoefXt - ddpmCoefXt) < 1e-9, `x_t: ${ddimCoefXt} vs ${ddpmCoefXt}`);
    assert.ok(Math.abs(ddimCoefX0 - ddpmCoefX0) < 1e-9, `x0: ${ddimCoefX0} vs ${ddpmCoefX0}`);
  }
});

schedule('coefficients: a repeated quad timestep is the identity at η = 0', () => {
  const steps = ddimStepCoefficients(linear, ddimTimesteps(50, 'quad'), 0);
  const repeat = steps[steps.length - 2];
  assert.equal([repeat.t, repeat.tPrev], [0, 0]);
  assert.is(repeat.sigma, 0);
  // x' = coefX0·invSqrtAlphaT·x + (dirCoef − coefX0·invSqrtAlphaT·sqrtOneMinusAlphaT)·ε
  assert.ok(Math.abs(repeat.coefX0 * repeat.invSqrtAlphaT - 1) < 1e-15);
  assert.ok(Math.abs(repeat.dirCoef - repeat.coefX0 * repeat.invSqrtAlphaT * repeat.sqrtOneMinusAlphaT) < 1e-15);
  assert.is(ddimStepCoefficients(linear, [0, 0, 5], 1)[1].sigma, 0);
});

schedule('inversion steps run from t = −1 up the timesteps', () => {
  const ts = ddimTimesteps(10, 'uniform');
  const steps = ddimInversionSteps(linear, ts);
  assert.equal(steps.map((s) => s.t), [-1, 0, 100, 200, 300, 400, 500, 600, 700, 800]);
  assert.equal(steps.map((s) => s.tPrev), ts);
  assert.equal(steps.map((s) => s.modelTimestep), [0, 0, 100, 200, 300, 400, 500, 600, 700, 800]);
  const first = steps[0];
  assert.equal([first.alphaT, first.invSqrtAlphaT, first.sqrtOneMinusAlphaT, first.sigma], [1, 1, 0, 0]);
  assert.is(first.coefX0, Math.sqrt(linear.alphasCumprod[0]));
  assert.is(first.dirCoef, Math.sqrt(1 - linear.alphasCumprod[0]));
  for (const s of steps) assert.is(s.sigma, 0);
});

schedule('one DDIM step reproduces the golden 10-step trajectory', () => {
  // ε of each golden step follows from its x_t and x0 prediction; the step's update must then
  // give the golden x_{t'}.
  const xs = goldenTensor('ddim10_eta0.xs');
  const x0Preds = goldenTensor('ddim10_eta0.x0_preds');
  const steps = ddimStepCoefficients(linear, meta.timesteps10, 0);
  let worst = 0;
  let worstX0 = 0;
  for (const [k, s] of steps.entries()) {
    const x = item(xs, k);
    const x0 = item(x0Preds, k);
    const next = item(xs, k + 1);
    for (let i = 0; i < x.length; i++) {
      const eps = (x[i] - x0[i] / s.invSqrtAlphaT) / s.sqrtOneMinusAlphaT;
      worstX0 = Math.max(worstX0, Math.abs((x[i] - s.sqrtOneMinusAlphaT * eps) * s.invSqrtAlphaT - x0[i]));
      worst = Math.max(worst, Math.abs(s.coefX0 * x0[i] + s.dirCoef * eps - next[i]));
    }
  }
  console.log(`    golden ddim10 step update: max abs error ${worst.toExponential(2)} (x0 round trip ${worstX0.toExponential(2)})`);
  assert.ok(worst < 1e-5);
});

/** ε of a data distribution that is one point μ: DDIM is exact for it, from any x_T. */
function pointMassEps(schedule: NoiseSchedule, mu: Float32Array): EpsFunction {
  return (x, t) => {
    const a = schedule.alphasCumprod[t];
    return x.map((v, i) => (v - Math.sqrt(a) * mu[i]) / Math.sqrt(1 - a));
  };
}

const reference = suite('reference');

reference('a point-mass denoiser is sampled exactly at η = 0 and η = 1', () => {
  const mu = philoxNormals(3, 0, 48).map((v) => Math.tanh(v));
  const xT = philoxNormals(4, 0, 48);
  for (const eta of [0, 1]) {
    for (const spacing of ['uniform', 'quad', 'trailing'] as const) {
      const ts = ddimTimesteps(20, spacing);
      const run = ddimSampleCpu(linear, xT, ts, pointMassEps(linear, mu), { eta, noise: (k) => philoxNormals(5, k, 48) });
      assert.is(run.xs.length, ts.length + 1);
      const err = maxAbsDiff(run.x, mu);
      assert.ok(err < 1e-5, `η = ${eta} ${spacing}: error ${err}`);
      for (const x0 of run.x0Preds) assert.ok(maxAbsDiff(x0, mu) < 1e-4);
    }
  }
});

reference('encode then decode at η = 0 returns the input, closer with more steps', () => {
  const x0 = philoxNormals(11, 0, 64).map((v) => Math.tanh(v));
  // A smooth ε that depends on x and t, like a network's.
  const eps: EpsFunction = (x, t) => x.map((v, i) => 0.3 * Math.sin(v + i) + 0.2 * v * (1 - t / 1000));
  const errors: number[] = [];
  for (const steps of [10, 100, 1000]) {
    const ts = ddimTimesteps(steps, 'uniform');
    const encoded = ddimEncodeCpu(linear, x0, ts, eps);
    const decoded = ddimSampleCpu(linear, encoded.x, ts, eps, { eta: 0 });
    errors.push(maxAbsDiff(decoded.x, x0));
  }
  console.log(`    encode/decode max error at 10, 100, 1000 steps: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
  // Both directions are first-order ODE solvers, so ten times the steps should cut the round-trip
  // error about tenfold.
  assert.ok(errors[1] < errors[0] / 5 && errors[2] < errors[1] / 5, 'the round trip should converge with steps');
  assert.ok(errors[2] < 0.02);
});

reference('clipping bounds every x0 prediction; η > 0 needs noise', () => {
  const xT = philoxNormals(6, 0, 32).map((v) => 3 * v);
  const ts = ddimTimesteps(10, 'uniform');
  const eps: EpsFunction = (x) => x.map(() => 0);
  const clipped = ddimSampleCpu(linear, xT, ts, eps, { clip: true });
  for (const x0 of clipped.x0Preds) for (const v of x0) assert.ok(Math.abs(v) <= 1);
  const unclipped = ddimSampleCpu(linear, xT, ts, eps, { clip: false });
  assert.ok(unclipped.x0Preds.some((x0) => x0.some((v) => Math.abs(v) > 1)));
  assert.throws(() => ddimSampleCpu(linear, xT, ts, eps, { eta: 0.5 }), /noise/);
});

reference('slerp matches the golden slerp.xT', () => {
  const xT = goldenTensor('xT');
  const ref = goldenTensor('slerp.xT');
  const alphas = goldenTensor('slerp.alphas').data;
  let worst = 0;
  for (const [k, alpha] of alphas.entries()) {
    const out = slerp(item(xT, 0), item(xT, 1), alpha);
    const err = maxAbsDiff(out, item(ref, k));
    worst = Math.max(worst, err);
    if (alpha === 0 || alpha === 1) assert.is(err, 0, `α = ${alpha} must return the endpoint exactly`);
  }
  console.log(`    slerp vs golden: max abs error ${worst.toExponential(2)}`);
  assert.ok(worst < 5e-7);
  // Nearly parallel latents fall back to a straight line rather than dividing by sin θ ≈ 0.
  const a = new Float32Array([1, 2, 3]);
  assert.equal(Array.from(slerp(a, a, 0.3)), Array.from(a));
});

schedule.run();
reference.run();
