/**
 * Counts what a piece of code asks of the GPU (submits, command buffers, compute passes,
 * dispatches) by standing in for the device's methods while it runs. Counted, not assumed: the
 * benchmark reports dispatches and submits per DDIM step from what the sampler really did.
 */

export interface GpuCallCounts {
  submits: number;
  commandBuffers: number;
  computePasses: number;
  dispatches: number;
}

// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => any;

/** Replaces `object[key]` by a wrapper for the duration of a count; returns the undo. */
function intercept<T extends object>(object: T, key: string, wrapper: (original: AnyFn) => AnyFn): () => void {
  const target = object as Record<string, unknown>;
  const hadOwn = Object.prototype.hasOwnProperty.call(object, key);
  const previous = target[key] as AnyFn;
  const original = previous.bind(object);
  target[key] = wrapper(original);
  return () => {
    if (hadOwn) target[key] = previous;
    else delete target[key];
  };
}

/**
 * Runs `fn` and counts the submits and dispatches made through `device` meanwhile. Only command
 * encoders created during `fn` are seen; work from other code running at the same time is
 * counted too.
 */
export async function countGpuCalls<T>(device: GPUDevice, fn: () => Promise<T>): Promise<{ result: T; counts: GpuCallCounts }> {
  const counts: GpuCallCounts = { submits: 0, commandBuffers: 0, computePasses: 0, dispatches: 0 };
  const queue = device.queue;
  const undo = [
    intercept(queue, 'submit', (submit) => (buffers: GPUCommandBuffer[]) => {
      counts.submits++;
      counts.commandBuffers += buffers.length;
      return submit(buffers);
    }),
    intercept(device, 'createCommandEncoder', (create) => (descriptor?: GPUCommandEncoderDescriptor) => {
      const encoder: GPUCommandEncoder = create(descriptor);
      intercept(encoder, 'beginComputePass', (begin) => (passDescriptor?: GPUComputePassDescriptor) => {
        counts.computePasses++;
        const pass: GPUComputePassEncoder = begin(passDescriptor);
        intercept(pass, 'dispatchWorkgroups', (dispatch) => (...args: number[]) => {
          counts.dispatches++;
          return dispatch(...args);
        });
        intercept(pass, 'dispatchWorkgroupsIndirect', (dispatch) => (...args: unknown[]) => {
          counts.dispatches++;
          return dispatch(...args);
        });
        return pass;
      });
      return encoder;
    }),
  ];
  try {
    const result = await fn();
    return { result, counts };
  } finally {
    for (const u of undo.reverse()) u();
  }
}
