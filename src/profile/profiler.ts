/**
 * Shader-level profiling of a compiled graph. Where the device has `timestamp-query`, every node
 * is recorded in its own compute pass with timestampWrites (CompiledGraph.record's profiling
 * form), the query set is resolved once per step into a buffer the CPU maps, and the times are
 * attributed to node names and op kinds. Without timestamp queries, each node is submitted alone
 * and timed on the CPU until onSubmittedWorkDone (`timing: 'cpu-fallback'`): that includes the
 * submit and wake-up latency of every dispatch, so it says which nodes are slow, not how slow.
 *
 * Two ways in:
 * - `profileForward(unet)` runs and times whole forwards by itself;
 * - a `Profiler` is handed to code that records the graph as an observer
 *   (`pipeline.sample({ observers: [profiler] })`), so a sampling run is profiled as it is, step
 *   by step.
 */
import { type Gpu, unlessLost } from '../gpu/device.ts';
import { type RecordableGraph, Recorder, type RecordObserver } from '../gpu/recorder.ts';
import type { CompiledGraph } from '../graph/executor.ts';
import type { UNet } from '../models/unet_2d_model.ts';

export type TimingSource = 'timestamp-query' | 'cpu-fallback';

/** One node's dispatch in one step. Times are in milliseconds from the first step's start. */
export interface NodeEvent {
  step: number;
  index: number;
  name: string;
  kind: string;
  startMs: number;
  durationMs: number;
  flops: number;
  bytes: number;
}

export interface KindSummary {
  kind: string;
  /** Dispatches of this kind in one step (one forward). */
  dispatches: number;
  /** Mean time per step. */
  totalMs: number;
  /** Of the per-node sum. */
  share: number;
  gflops: number;
  gbps: number;
}

export interface NodeSummary {
  index: number;
  name: string;
  kind: string;
  /** Mean over the profiled steps. */
  ms: number;
  flops: number;
  bytes: number;
}

export interface Profile {
  adapter: string;
  timing: TimingSource;
  steps: number;
  dispatchesPerStep: number;
  /** Every node of every step, in order. */
  events: NodeEvent[];
  /** Per step: first begin → last end (timestamps), or the wall time of the step (fallback). */
  stepTotalsMs: number[];
  /** Per step: the sum of the nodes' own times. */
  stepNodeSumsMs: number[];
  kinds: KindSummary[];
  nodes: NodeSummary[];
  /** Steps whose timestamps were not usable (an end before its begin), left out of the sums. */
  discardedSteps: number;
  /**
   * The largest power of two (in ns) that divides every timestamp difference: 1 or a few ns for
   * raw timestamps; 65536 where the implementation rounds them (Dawn's timestamp_quantization,
   * on unless Dawn is started with `disable-dawn-features=timestamp_quantization`), which makes
   * per-node times of fast GPUs meaningless. Null without timestamps.
   */
  timestampQuantumNs: number | null;
}

/** Quanta at or above this are reported as rounding by the implementation. */
export const QUANTIZED_AT_NS = 4096;

/** Timestamp readbacks in flight at once; a step waits for the oldest when all are taken. */
const READBACK_RING = 4;

type StepSource = { kind: 'timestamps'; stamps: BigUint64Array } | { kind: 'cpu'; durations: number[]; wallMs: number };

/**
 * Collects per-node times of a compiled graph over any number of steps. It is a RecordObserver:
 * hand it to the code that records the graph (`pipeline.sample({ observers: [profiler] })`) and
 * every forward of that graph is recorded through it, one timed pass per node. The timestamps
 * are resolved once per step into one of a few readback buffers made up front, so a step creates
 * nothing on the GPU.
 */
export class Profiler implements RecordObserver {
  readonly timing: TimingSource;
  private readonly querySet?: GPUQuerySet;
  private readonly resolveBuffer?: GPUBuffer;
  private readonly steps: StepSource[] = [];
  private readonly queryCount: number;
  private readonly free: GPUBuffer[] = [];
  private readonly all: GPUBuffer[] = [];
  /** Recorded into a command buffer that has not been submitted yet. */
  private readonly recorded: GPUBuffer[] = [];
  /** Submitted, being mapped, oldest first. */
  private readonly mapping: { buffer: GPUBuffer; mapped: Promise<void> }[] = [];
  /** Steps recorded without timestamps, to be timed node by node in finish(). */
  private pendingCpuSteps = 0;

  constructor(readonly gpu: Gpu, readonly compiled: CompiledGraph, options: { forceCpuTiming?: boolean } = {}) {
    const nodes = compiled.nodeList.length;
    this.queryCount = 2 * nodes;
    // A query set holds at most 4096 queries: a graph of more nodes is timed on the CPU.
    this.timing = gpu.hasTimestamps && !options.forceCpuTiming && this.queryCount <= 4096 ? 'timestamp-query' : 'cpu-fallback';
    if (this.timing === 'timestamp-query') {
      const { device } = gpu;
      const bytes = this.queryCount * 8;
      this.querySet = device.createQuerySet({ label: 'profiler.timestamps', type: 'timestamp', count: this.queryCount });
      this.resolveBuffer = device.createBuffer({
        label: 'profiler.resolve',
        size: bytes,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      for (let i = 0; i < READBACK_RING; i++) {
        const buffer = device.createBuffer({
          label: `profiler.readback${i}`,
          size: bytes,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        });
        this.all.push(buffer);
        this.free.push(buffer);
      }
    }
  }

  /**
   * Records one forward of the profiled graph: with timestamps, one timed pass per node, then the
   * query set resolved and copied out; without, the graph as usual (timed node by node in
   * finish()). Other graphs are recorded as they are.
   */
  recordGraph(encoder: GPUCommandEncoder, graph: RecordableGraph, recorder: Recorder): void {
    if (graph !== this.compiled || this.timing === 'cpu-fallback') {
      graph.record(encoder, recorder);
      if (graph === this.compiled) this.pendingCpuSteps++;
      return;
    }
    const readback = this.free.shift();
    if (!readback) throw new Error('profiler: a step was recorded before the previous ones were submitted');
    graph.record(encoder, recorder, { querySet: this.querySet!, firstQuery: 0 });
    encoder.resolveQuerySet(this.querySet!, 0, this.queryCount, this.resolveBuffer!, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer!, 0, readback, 0, this.queryCount * 8);
    this.recorded.push(readback);
  }

  /** After a submit: maps what it carried, and waits for the oldest step when no readback is free. */
  async afterSubmit(): Promise<void> {
    for (const buffer of this.recorded.splice(0)) this.mapping.push({ buffer, mapped: buffer.mapAsync(GPUMapMode.READ) });
    if (this.free.length === 0 && this.mapping.length > 0) await this.collectOldest();
  }

  private async collectOldest(): Promise<void> {
    const { buffer, mapped } = this.mapping.shift()!;
    await unlessLost(this.gpu.device, mapped);
    this.steps.push({ kind: 'timestamps', stamps: new BigUint64Array(buffer.getMappedRange().slice(0)) });
    buffer.unmap();
    this.free.push(buffer);
  }

  /** Runs the graph once node by node, each in its own submit, timed on the CPU. */
  private async timeNodesOnCpu(): Promise<void> {
    const recorder = new Recorder(this.gpu.device);
    const durations: number[] = [];
    const start = performance.now();
    for (let i = 0; i < this.compiled.nodeList.length; i++) {
      const t0 = performance.now();
      const encoder = recorder.encoder(`profile ${this.compiled.nodeList[i].name}`);
      this.compiled.recordNode(encoder, recorder, i);
      recorder.submit(encoder);
      await recorder.done();
      durations.push(performance.now() - t0);
    }
    this.steps.push({ kind: 'cpu', durations, wallMs: performance.now() - start });
  }

  /** Times one whole step by itself (a plain forward of the graph as it stands). */
  async step(): Promise<void> {
    if (this.timing === 'cpu-fallback') return this.timeNodesOnCpu();
    const recorder = new Recorder(this.gpu.device, [this]);
    const encoder = recorder.encoder('profile step');
    recorder.graph(encoder, this.compiled);
    recorder.submit(encoder);
    await recorder.afterSubmit();
    await recorder.done();
  }

  /**
   * Waits for every step's times and summarises them. Steps recorded without timestamps are
   * replayed node by node here (once each, at most `maxCpuSteps`), since their own dispatches ran
   * inside someone else's command buffers.
   */
  async finish(options: { maxCpuSteps?: number } = {}): Promise<Profile> {
    // Anything recorded is taken as submitted by now.
    await this.afterSubmit();
    while (this.mapping.length > 0) await this.collectOldest();
    const replays = Math.min(this.pendingCpuSteps, options.maxCpuSteps ?? 1);
    this.pendingCpuSteps = 0;
    for (let i = 0; i < replays; i++) await this.timeNodesOnCpu();
    const nodes = this.compiled.nodeList;
    const events: NodeEvent[] = [];
    const stepTotalsMs: number[] = [];
    const stepNodeSumsMs: number[] = [];
    let discardedSteps = 0;
    let differenceBits = 0n;
    let origin: bigint | undefined;
    let cpuClock = 0;
    for (const source of this.steps) {
      const step = stepTotalsMs.length;
      if (source.kind === 'timestamps') {
        const stamps = source.stamps;
        const first = stamps[0];
        const last = stamps[2 * nodes.length - 1];
        let valid = last >= first;
        for (let i = 0; valid && i < nodes.length; i++) valid = stamps[2 * i + 1] >= stamps[2 * i];
        if (!valid) {
          discardedSteps++;
          continue;
        }
        origin ??= first;
        for (let i = 0; i < 2 * nodes.length; i++) differenceBits |= stamps[i] - first;
        let sum = 0;
        nodes.forEach((node, i) => {
          // Differences of BigInt nanoseconds, made Numbers only once they are small.
          const durationMs = Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6;
          const startMs = Number(stamps[2 * i] - origin!) / 1e6;
          sum += durationMs;
          events.push({ step, index: i, name: node.name, kind: node.kind, startMs, durationMs, flops: node.flops, bytes: node.bytes });
        });
        stepTotalsMs.push(Number(last - first) / 1e6);
        stepNodeSumsMs.push(sum);
      } else {
        let clock = cpuClock;
        nodes.forEach((node, i) => {
          events.push({
            step,
            index: i,
            name: node.name,
            kind: node.kind,
            startMs: clock,
            durationMs: source.durations[i],
            flops: node.flops,
            bytes: node.bytes,
          });
          clock += source.durations[i];
        });
        cpuClock += source.wallMs;
        stepTotalsMs.push(source.wallMs);
        stepNodeSumsMs.push(source.durations.reduce((a, b) => a + b, 0));
      }
    }
    this.steps.length = 0;
    return summarise({
      adapter: this.gpu.adapterName,
      timing: this.timing,
      steps: stepTotalsMs.length,
      dispatchesPerStep: nodes.length,
      events,
      stepTotalsMs,
      stepNodeSumsMs,
      discardedSteps,
      // The lowest set bit of all differences OR-ed together.
      timestampQuantumNs: this.timing === 'timestamp-query' && differenceBits > 0n ? Number(differenceBits & -differenceBits) : null,
    });
  }

  destroy(): void {
    for (const b of this.all) b.destroy();
    this.all.length = 0;
    this.steps.length = 0;
    this.querySet?.destroy();
    this.resolveBuffer?.destroy();
  }
}

function summarise(p: Omit<Profile, 'kinds' | 'nodes'>): Profile {
  const steps = Math.max(p.steps, 1);
  const byNode = new Map<number, NodeSummary>();
  for (const e of p.events) {
    const n = byNode.get(e.index) ?? { index: e.index, name: e.name, kind: e.kind, ms: 0, flops: e.flops, bytes: e.bytes };
    n.ms += e.durationMs / steps;
    byNode.set(e.index, n);
  }
  const nodes = [...byNode.values()].sort((a, b) => a.index - b.index);
  const total = nodes.reduce((a, n) => a + n.ms, 0);
  const byKind = new Map<string, KindSummary & { flopsSum: number; bytesSum: number }>();
  for (const n of nodes) {
    const k = byKind.get(n.kind) ?? { kind: n.kind, dispatches: 0, totalMs: 0, share: 0, gflops: 0, gbps: 0, flopsSum: 0, bytesSum: 0 };
    k.dispatches++;
    k.totalMs += n.ms;
    k.flopsSum += n.flops;
    k.bytesSum += n.bytes;
    byKind.set(n.kind, k);
  }
  const kinds = [...byKind.values()]
    .map(({ flopsSum, bytesSum, ...k }) => ({
      ...k,
      share: total > 0 ? k.totalMs / total : 0,
      gflops: k.totalMs > 0 ? flopsSum / (k.totalMs * 1e6) : 0,
      gbps: k.totalMs > 0 ? bytesSum / (k.totalMs * 1e6) : 0,
    }))
    .sort((a, b) => b.totalMs - a.totalMs);
  return { ...p, kinds, nodes };
}

/** Times `steps` whole forwards of a UNet (or any compiled graph) on its current inputs. */
export async function profileForward(
  model: UNet | CompiledGraph,
  options: { steps?: number; warmup?: number; forceCpuTiming?: boolean } = {},
): Promise<Profile> {
  const compiled = 'compiled' in model ? model.compiled : model;
  const profiler = new Profiler(compiled.gpu, compiled, { forceCpuTiming: options.forceCpuTiming });
  try {
    for (let i = 0; i < (options.warmup ?? 1); i++) await compiled.run();
    for (let i = 0; i < (options.steps ?? 1); i++) await profiler.step();
    return await profiler.finish();
  } finally {
    profiler.destroy();
  }
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** The per-kind table (and the slowest nodes) as text. */
export function formatProfile(p: Profile, options: { topNodes?: number } = {}): string {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  const total = mean(p.stepTotalsMs);
  const sum = mean(p.stepNodeSumsMs);
  const lines = [
    `profile: ${p.adapter}; timing ${p.timing}${
      p.timing === 'cpu-fallback' ? ' (no timestamp-query: each node submitted alone and timed on the CPU, submit latency included)' : ''
    }`,
    `${p.steps} step(s), ${p.dispatchesPerStep} dispatches per step; step ${
      p.timing === 'timestamp-query' ? 'GPU time (first begin to last end)' : 'wall time'
    } ${total.toFixed(3)} ms, per-node sum ${sum.toFixed(3)} ms (${total > 0 ? ((100 * sum) / total).toFixed(1) : '-'}%)` +
    (p.discardedSteps ? `; ${p.discardedSteps} step(s) with unusable timestamps left out` : ''),
    ...(p.timestampQuantumNs !== null && p.timestampQuantumNs >= QUANTIZED_AT_NS
      ? [
        `NOTE: timestamps are rounded to ${
          (p.timestampQuantumNs / 1000).toFixed(3)
        } us by the WebGPU implementation; node times shorter than that are noise ` +
        "(Dawn: start it with 'disable-dawn-features=timestamp_quantization')",
      ]
      : []),
    '',
    `${pad('kind', 20)}${lpad('dispatches', 11)}${lpad('total ms', 12)}${lpad('share', 8)}${lpad('GFLOP/s', 10)}${lpad('GB/s', 9)}`,
  ];
  for (const k of p.kinds) {
    lines.push(
      `${pad(k.kind, 20)}${lpad(String(k.dispatches), 11)}${lpad(k.totalMs.toFixed(3), 12)}${lpad((100 * k.share).toFixed(1) + '%', 8)}${
        lpad(k.gflops.toFixed(2), 10)
      }${lpad(k.gbps.toFixed(2), 9)}`,
    );
  }
  const top = options.topNodes ?? 10;
  if (top > 0) {
    lines.push('', `slowest ${Math.min(top, p.nodes.length)} nodes:`);
    for (const n of [...p.nodes].sort((a, b) => b.ms - a.ms).slice(0, top)) {
      const rate = n.ms > 0 ? n.flops / (n.ms * 1e6) : 0;
      lines.push(`  ${pad(n.name, 44)}${pad(n.kind, 18)}${lpad(n.ms.toFixed(3), 10)} ms${lpad(rate.toFixed(2), 9)} GFLOP/s`);
    }
  }
  return lines.join('\n');
}

/** Chrome's trace-event JSON (chrome://tracing, Perfetto): one complete event per node per step. */
export function chromeTrace(p: Profile): { traceEvents: object[]; displayTimeUnit: 'ms'; metadata: Record<string, unknown> } {
  return {
    traceEvents: [
      { name: 'process_name', ph: 'M', pid: 1, tid: 1, args: { name: p.adapter } },
      {
        name: 'thread_name',
        ph: 'M',
        pid: 1,
        tid: 1,
        args: { name: p.timing === 'timestamp-query' ? 'GPU queue (timestamps)' : 'GPU queue (CPU-timed)' },
      },
      ...p.events.map((e) => ({
        name: e.name,
        cat: e.kind,
        ph: 'X',
        ts: e.startMs * 1000,
        dur: e.durationMs * 1000,
        pid: 1,
        tid: 1,
        args: { flops: e.flops, bytes: e.bytes, step: e.step },
      })),
    ],
    displayTimeUnit: 'ms',
    metadata: {
      adapter: p.adapter,
      timing: p.timing,
      steps: p.steps,
      dispatchesPerStep: p.dispatchesPerStep,
      timestampQuantumNs: p.timestampQuantumNs,
    },
  };
}
