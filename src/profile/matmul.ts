/**
 * The floor the benchmark measures against: the rate of the engine's best plain f32 matmul on
 * this adapter, measured in the same run. Two variants, because the best kernel shape differs by
 * adapter: register blocks with no workgroup memory (shaders/bench/matmul.wgsl) win on llvmpipe, where
 * barriers are expensive; workgroup tiles (shaders/bench/matmul_tiled.wgsl) win on real GPUs.
 */
import type { Gpu } from '../gpu/device.ts';
import { Kernel, ParamsBuffer } from '../gpu/kernel.ts';
import { Recorder } from '../gpu/recorder.ts';
import { readBuffer } from '../graph/executor.ts';
import { SHADERS } from '../shaders.gen.ts';
import { median, readTimestamps } from './timing.ts';

export type MatmulVariant = 'matmul' | 'matmul_tiled';
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['matmul', 'matmul_tiled'];

/** One variant's shape rules and dispatch grid. */
export const MATMUL_KERNELS: Record<MatmulVariant, {
  description: string;
  /** Null when the shape suits the kernel, else why not. */
  check(m: number, n: number, k: number): string | null;
  /** Invocations along (columns, rows) of C. */
  invocations(m: number, n: number): [number, number];
}> = {
  matmul: {
    description: 'register-blocked 8x8, no workgroup memory',
    check: (m, n, k) => (n % 8 !== 0 || k % 4 !== 0 || m < 1 ? 'needs N % 8 == 0 and K % 4 == 0' : null),
    // Each invocation computes 8 rows by 8 columns of C.
    invocations: (m, n) => [Math.ceil(n / 8), Math.ceil(m / 8)],
  },
  matmul_tiled: {
    description: '64x64 workgroup tiles, 4x4 per invocation',
    check: (m, n, k) => (m % 64 !== 0 || n % 64 !== 0 || k % 16 !== 0 ? 'needs M and N % 64 == 0 and K % 16 == 0' : null),
    // A 64x64 tile per workgroup of 16x16 invocations, 4x4 each.
    invocations: (m, n) => [n / 4, m / 4],
  },
};

export interface MatmulMeasurement {
  variant: MatmulVariant;
  description: string;
  m: number;
  n: number;
  k: number;
  /** Median wall time of one matmul (dispatches submitted together, onSubmittedWorkDone). */
  wallMs: number;
  /** Median GPU time of one dispatch from timestamp queries, when the adapter has them. */
  gpuMs: number | null;
  /** 2·M·N·K over the GPU time where there is one, else over the wall time. */
  gflops: number;
  /** Median CPU time of this process per matmul, with `cpuClock` (a software driver runs in it). */
  cpuMs: number | null;
  /** 2·M·N·K over that CPU time. */
  cpuGflops: number | null;
  /** Worst |c − ref| / (|ref| + 1) over a sample of entries checked against the CPU. */
  maxError: number;
}

/** Uniform values in [-1, 1) from a fixed seed (xorshift32). */
function randomMatrix(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2147483648 - 1;
  }
  return out;
}

/**
 * Times one variant on an M x K by K x N product: `warmup` unmeasured runs, then `repeats`
 * samples of `perSubmit` dispatches each. Checks a sample of C against the CPU.
 */
export async function measureMatmul(
  gpu: Gpu,
  variant: MatmulVariant,
  size: { m: number; n: number; k: number },
  options: { repeats?: number; perSubmit?: number; warmup?: number; cpuClock?: () => number } = {},
): Promise<MatmulMeasurement> {
  const { device } = gpu;
  const { m, n, k } = size;
  const kernel = MATMUL_KERNELS[variant];
  const problem = kernel.check(m, n, k);
  if (problem) throw new Error(`${variant} ${m}x${n}x${k}: ${problem}`);
  const repeats = options.repeats ?? 5;
  const perSubmit = options.perSubmit ?? 1;
  const shader = SHADERS[variant];
  const a = randomMatrix(m * k, 1);
  const b = randomMatrix(k * n, 2);
  const owned: { destroy(): void }[] = [];
  const buffer = (label: string, bytes: number, usage: number) => {
    const created = device.createBuffer({ label, size: bytes, usage });
    owned.push(created);
    return created;
  };
  try {
    const aBuf = buffer(`${variant}.a`, a.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const bBuf = buffer(`${variant}.b`, b.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const cBuf = buffer(`${variant}.c`, m * n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const params = new ParamsBuffer(device, `${variant}.params`, [shader], 1);
    owned.push(params);
    device.queue.writeBuffer(aBuf, 0, a);
    device.queue.writeBuffer(bBuf, 0, b);
    params.set(0, shader, { m, n, k }, variant);
    params.upload();
    const matmul = await Kernel.load(device, shader);
    const names = shader.bindings.map((binding) => binding.name);
    const bindGroup = matmul.bind(variant, {
      [names[0]]: aBuf,
      [names[1]]: bBuf,
      [names[2]]: cBuf,
      [names[3]]: params.binding(0, shader),
    });
    const workgroups = matmul.workgroups({ invocations: kernel.invocations(m, n) });
    const recorder = new Recorder(device);
    const querySet = gpu.hasTimestamps
      ? device.createQuerySet({ label: `${variant}.timestamps`, type: 'timestamp', count: 2 * perSubmit })
      : undefined;

    const cpuClock = options.cpuClock;
    const runOnce = async (): Promise<{ wall: number; cpu: number | null; gpu: number[] | null }> => {
      const encoder = recorder.encoder(variant);
      for (let i = 0; i < perSubmit; i++) {
        const pass = recorder.pass(
          encoder,
          variant,
          querySet ? { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } : undefined,
        );
        recorder.dispatch(pass, matmul, bindGroup, workgroups);
        pass.end();
      }
      const readTimes = querySet ? readTimestamps(device, encoder, querySet, 2 * perSubmit) : undefined;
      const cpuStart = cpuClock?.();
      const start = performance.now();
      recorder.submit(encoder);
      await recorder.done();
      const wall = (performance.now() - start) / perSubmit;
      const cpu = cpuClock ? (cpuClock() - cpuStart!) / perSubmit : null;
      if (!readTimes) return { wall, cpu, gpu: null };
      const stamps = await readTimes();
      const gpuTimes: number[] = [];
      for (let i = 0; i < perSubmit; i++) gpuTimes.push(Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6);
      return { wall, cpu, gpu: gpuTimes };
    };

    for (let i = 0; i < (options.warmup ?? 1); i++) await runOnce();
    const walls: number[] = [];
    const cpus: number[] = [];
    const gpuTimes: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const r = await runOnce();
      walls.push(r.wall);
      if (r.cpu !== null) cpus.push(r.cpu);
      if (r.gpu) gpuTimes.push(...r.gpu.filter((t) => t > 0));
    }
    querySet?.destroy();

    const c = await readBuffer(device, cBuf, m * n * 4);
    let maxError = 0;
    const checks = 64;
    for (let s = 0; s < checks; s++) {
      const i = Math.floor(((s * 7919) % checks) * m / checks + (s % 3)) % m;
      const j = Math.floor(((s * 104729) % checks) * n / checks + (s % 5)) % n;
      let ref = 0;
      for (let p = 0; p < k; p++) ref += a[i * k + p] * b[p * n + j];
      maxError = Math.max(maxError, Math.abs(c[i * n + j] - ref) / (Math.abs(ref) + 1));
    }
    const wallMs = median(walls);
    const gpuMs = gpuTimes.length ? median(gpuTimes) : null;
    const cpuMs = cpus.length ? median(cpus) : null;
    const flops = 2 * m * n * k;
    return {
      variant,
      description: kernel.description,
      m,
      n,
      k,
      wallMs,
      gpuMs,
      gflops: flops / ((gpuMs ?? wallMs) * 1e6),
      cpuMs,
      cpuGflops: cpuMs ? flops / (cpuMs * 1e6) : null,
      maxError,
    };
  } finally {
    for (const buf of owned) buf.destroy();
  }
}

export interface MatmulFloor {
  /** The fastest variant's measurement: the floor every result is compared with. */
  best: MatmulMeasurement;
  /** The variant fastest per CPU-second, with a CPU clock (for a software driver on a busy machine). */
  bestCpu: MatmulMeasurement | null;
  measurements: MatmulMeasurement[];
}

/**
 * Measures every variant on square products, growing the size (from `minSize`, doubling, up to
 * `maxSize`) while one product takes under `targetMs`, so a fast GPU is measured on a product big
 * enough to fill it and a software driver is not kept waiting. A variant whose result is wrong
 * (error over 1e-3) cannot be the floor.
 */
export async function measureMatmulFloor(
  gpu: Gpu,
  options: { minSize?: number; maxSize?: number; targetMs?: number; repeats?: number; cpuClock?: () => number } = {},
): Promise<MatmulFloor> {
  const minSize = options.minSize ?? 256;
  const maxSize = options.maxSize ?? 4096;
  const targetMs = options.targetMs ?? 20;
  const measurements: MatmulMeasurement[] = [];
  for (const variant of MATMUL_VARIANTS) {
    let size = minSize;
    const settings = { repeats: options.repeats, warmup: 1, cpuClock: options.cpuClock };
    let result = await measureMatmul(gpu, variant, { m: size, n: size, k: size }, settings);
    while ((result.gpuMs ?? result.wallMs) < targetMs && size * 2 <= maxSize) {
      size *= 2;
      result = await measureMatmul(gpu, variant, { m: size, n: size, k: size }, settings);
    }
    measurements.push(result);
  }
  const valid = measurements.filter((r) => r.maxError <= 1e-3);
  if (valid.length === 0) {
    throw new Error(
      `no matmul variant computed a correct product: ${measurements.map((r) => `${r.variant} error ${r.maxError}`).join(', ')}`,
    );
  }
  const best = valid.reduce((x, y) => (y.gflops > x.gflops ? y : x));
  const withCpu = valid.filter((r) => r.cpuGflops !== null);
  const bestCpu = withCpu.length ? withCpu.reduce((x, y) => (y.cpuGflops! > x.cpuGflops! ? y : x)) : null;
  return { best, bestCpu, measurements };
}
