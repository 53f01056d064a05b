/**
 * Counts what a piece of code asks of the GPU (submits, command buffers, compute passes,
 * dispatches) as a RecordObserver handed to it: the benchmark reports dispatches and submits per
 * DDIM step from what the sampler really did.
 */
import type { RecordObserver } from '../gpu/recorder.ts';

export interface GpuCallCounts {
  submits: number;
  commandBuffers: number;
  computePasses: number;
  dispatches: number;
}

export class CallCounter implements RecordObserver {
  readonly counts: GpuCallCounts = { submits: 0, commandBuffers: 0, computePasses: 0, dispatches: 0 };

  passBegun(): void {
    this.counts.computePasses++;
  }

  dispatched(): void {
    this.counts.dispatches++;
  }

  submitted(commandBuffers: number): void {
    this.counts.submits++;
    this.counts.commandBuffers += commandBuffers;
  }
}

/** Runs `fn` with a fresh counter and returns what it counted. */
export async function countGpuCalls<T>(fn: (counter: CallCounter) => Promise<T>): Promise<{ result: T; counts: GpuCallCounts }> {
  const counter = new CallCounter();
  const result = await fn(counter);
  return { result, counts: counter.counts };
}
