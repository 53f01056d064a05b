/**
 * Classifier-free guidance as a Denoiser: the sampler steps `n` states, and each forward runs the
 * conditional network once on the batch [negative, positive] (2n: the state copied into both
 * halves, the timesteps too), then combines ε = ε_neg + g·(ε_pos − ε_neg) on the GPU
 * (shaders/sampler/guidance.wgsl). Nothing is read back; the conditioning of each half is the
 * network's, written per batch of images by the pipeline (`beginBatch`).
 */
import type { Gpu } from '../gpu/device.ts';
import { type Kernel, loadKernels, ParamsBuffer } from '../gpu/kernel.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { CompiledGraph } from '../graph/executor.ts';
import { SHADERS } from '../shaders.gen.ts';
import type { ClassConditioning, Denoiser } from './denoiser.ts';

/** The network under guidance: a Denoiser over 2n images whose conditioning is set elsewhere. */
export type ConditionalNetwork = Omit<Denoiser, 'beginBatch' | 'config' | 'classLabelBuffer'>;

export class GuidedDenoiser implements Denoiser {
  readonly batch: number;
  readonly sampleShape: [number, number, number, number];
  readonly sampleBuffer: GPUBuffer;
  readonly timestepBuffer: GPUBuffer;
  readonly epsBuffer: GPUBuffer;
  readonly config: ClassConditioning = { classEmbedType: null, numClassEmbeds: null };
  beginBatch?: (first: number, count: number) => void;
  private readonly params: ParamsBuffer;
  private readonly bindGroup: GPUBindGroup;
  private readonly bytes: number;

  private constructor(readonly gpu: Gpu, readonly network: ConditionalNetwork, private readonly kernel: Kernel, scale: number) {
    const [batch, c, h, w] = network.sampleShape;
    if (batch % 2 !== 0) throw new Error(`guidance needs the network's batch to be [negative, positive], got ${batch} images`);
    this.batch = batch / 2;
    this.sampleShape = [this.batch, c, h, w];
    const count = this.batch * c * h * w;
    this.bytes = 4 * count;
    const { device } = gpu;
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.sampleBuffer = device.createBuffer({ label: 'guidance.sample', size: this.bytes, usage: storage });
    this.epsBuffer = device.createBuffer({ label: 'guidance.eps', size: this.bytes, usage: storage });
    this.timestepBuffer = device.createBuffer({ label: 'guidance.timesteps', size: 4 * this.batch, usage: storage });
    this.params = new ParamsBuffer(device, 'guidance.params', [kernel.shader], 1);
    this.params.set(0, kernel.shader, { count, scale });
    this.params.upload();
    this.bindGroup = kernel.bind('guidance', {
      both: network.epsBuffer,
      guided: this.epsBuffer,
      params: this.params.binding(0, kernel.shader),
    });
  }

  /** Guidance scale `scale` over `network` (compiled for 2n images); its kernel compiled and run once before this resolves. */
  static async create(gpu: Gpu, network: ConditionalNetwork, scale: number): Promise<GuidedDenoiser> {
    const shader = SHADERS.guidance;
    // The first run writes nothing of use: a zero count.
    const zeros = new ParamsBuffer(gpu.device, 'guidance.first_run', [shader], 1);
    zeros.upload();
    // Two buffers: one may not be bound read-only and read-write in one dispatch.
    const scratch = [0, 1].map(() => gpu.device.createBuffer({ label: 'guidance.first_run', size: 16, usage: GPUBufferUsage.STORAGE }));
    try {
      const [kernel] = await loadKernels(
        gpu.device,
        [shader],
        (k) => k.bind('guidance first run', { both: scratch[0], guided: scratch[1], params: zeros.binding(0, shader) }),
      );
      return new GuidedDenoiser(gpu, network, kernel, scale);
    } finally {
      zeros.destroy();
      for (const buffer of scratch) buffer.destroy();
    }
  }

  get compiled(): CompiledGraph {
    return this.network.compiled;
  }

  /** A new guidance scale for the calls that follow. */
  setScale(scale: number): void {
    this.params.set(0, this.kernel.shader, { count: this.bytes / 4, scale });
    this.params.upload();
  }

  record(encoder: GPUCommandEncoder, recorder: Recorder): void {
    const net = this.network;
    // The same state and timesteps in both halves of the network's batch.
    for (const half of [0, 1]) {
      encoder.copyBufferToBuffer(this.sampleBuffer, 0, net.sampleBuffer, half * this.bytes, this.bytes);
      encoder.copyBufferToBuffer(this.timestepBuffer, 0, net.timestepBuffer, half * 4 * this.batch, 4 * this.batch);
    }
    net.record(encoder, recorder);
    const workgroups = this.kernel.workgroups({ invocations: [this.bytes / 4], flat: true });
    recorder.dispatchAlone(encoder, 'guidance', this.kernel, this.bindGroup, workgroups);
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.network.exclusive(work);
  }

  destroy(): void {
    this.sampleBuffer.destroy();
    this.epsBuffer.destroy();
    this.timestepBuffer.destroy();
    this.params.destroy();
  }
}
