/**
 * Every command encoder, compute pass, dispatch and submit of the engine goes through a
 * `Recorder`. Code that observes GPU work (the profiler, the call counters of the benchmark and
 * tests) is handed to it as a `RecordObserver`, rather than replacing device methods at run time.
 */
import { unlessLost } from './device.ts';
import type { Kernel, Workgroups } from './kernel.ts';

/** Something made of dispatches that an observer may record its own way (a compiled graph). */
export interface RecordableGraph {
  readonly label: string;
  /** Records the graph: one pass by default; with `timestamps`, one timed pass per node. */
  record(encoder: GPUCommandEncoder, recorder: Recorder, timestamps?: { querySet: GPUQuerySet; firstQuery: number }): void;
}

export interface RecordObserver {
  passBegun?(label: string): void;
  dispatched?(kernel: string): void;
  submitted?(commandBuffers: number): void;
  /**
   * Records `graph` in place of its own recording (the profiler's timestamped passes). The first
   * observer that has this method does it.
   */
  recordGraph?(encoder: GPUCommandEncoder, graph: RecordableGraph, recorder: Recorder): void;
  /** Awaited after every submit that ends a step: an observer with bounded readbacks waits here. */
  afterSubmit?(): Promise<void>;
}

export class Recorder {
  constructor(readonly device: GPUDevice, private readonly observers: readonly RecordObserver[] = []) {}

  /** The same recorder with more observers. */
  with(...observers: (RecordObserver | undefined)[]): Recorder {
    const more = observers.filter((o): o is RecordObserver => !!o);
    return more.length ? new Recorder(this.device, [...this.observers, ...more]) : this;
  }

  encoder(label: string): GPUCommandEncoder {
    return this.device.createCommandEncoder({ label });
  }

  pass(encoder: GPUCommandEncoder, label: string, timestampWrites?: GPUComputePassTimestampWrites): GPUComputePassEncoder {
    for (const o of this.observers) o.passBegun?.(label);
    return encoder.beginComputePass(timestampWrites ? { label, timestampWrites } : { label });
  }

  dispatch(pass: GPUComputePassEncoder, kernel: Kernel, bindGroup: GPUBindGroup, workgroups: Workgroups): void {
    for (const o of this.observers) o.dispatched?.(kernel.name);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...workgroups);
  }

  /** One dispatch in a pass of its own. */
  dispatchAlone(encoder: GPUCommandEncoder, label: string, kernel: Kernel, bindGroup: GPUBindGroup, workgroups: Workgroups): void {
    const pass = this.pass(encoder, label);
    this.dispatch(pass, kernel, bindGroup, workgroups);
    pass.end();
  }

  /** Records a graph, or lets an observer record it (timed) in its place. */
  graph(encoder: GPUCommandEncoder, graph: RecordableGraph): void {
    const stand = this.observers.find((o) => o.recordGraph);
    if (stand) stand.recordGraph!(encoder, graph, this);
    else graph.record(encoder, this);
  }

  submit(...encoders: GPUCommandEncoder[]): void {
    for (const o of this.observers) o.submitted?.(encoders.length);
    this.device.queue.submit(encoders.map((e) => e.finish()));
  }

  /** Gives every observer its turn after a step's submit. */
  async afterSubmit(): Promise<void> {
    for (const o of this.observers) await o.afterSubmit?.();
  }

  /** Resolves when everything submitted so far has run (or rejects if the device is lost). */
  done(): Promise<void> {
    return unlessLost(this.device, this.device.queue.onSubmittedWorkDone());
  }
}

/** Reads GPU buffers back through one reused staging buffer, one read at a time. */
export class Readback {
  private staging: GPUBuffer;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly device: GPUDevice, readonly label: string, readonly capacity: number) {
    this.staging = device.createBuffer({ label, size: alignBytes(capacity), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** `bytes` of `source` from `offset`, as floats. */
  async read(recorder: Recorder, source: GPUBuffer, bytes: number, offset = 0): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(recorder, source, bytes, offset));
  }

  /** `bytes` of `source` from `offset`. */
  readBytes(recorder: Recorder, source: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    if (bytes > this.capacity) throw new Error(`${this.label}: reading ${bytes} bytes, more than its ${this.capacity}`);
    const run = this.queue.then(async () => {
      const encoder = recorder.encoder(`${this.label}: ${source.label}`);
      encoder.copyBufferToBuffer(source, offset, this.staging, 0, alignBytes(bytes));
      recorder.submit(encoder);
      await unlessLost(this.device, this.staging.mapAsync(GPUMapMode.READ, 0, alignBytes(bytes)));
      try {
        return this.staging.getMappedRange(0, alignBytes(bytes)).slice(0, bytes);
      } finally {
        this.staging.unmap();
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  destroy(): void {
    this.staging.destroy();
  }
}

/** Copies and mapped ranges are whole 4-byte words. */
function alignBytes(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}
