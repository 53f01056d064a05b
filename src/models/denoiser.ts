/**
 * What the DDIM sampler drives: a network that predicts the model output (ε, x0 or v) for a batch
 * of states in place on the GPU. A UNet2DModel is one as it is; a text-conditioned UNet under
 * classifier-free guidance is one made of a forward over [negative, positive] and the guidance
 * combination (src/models/guidance.ts). The sampler never reads back between steps.
 */
import type { CompiledGraph } from '../graph/executor.ts';
import type { Recorder } from '../gpu/recorder.ts';

/** Class conditioning, as checkClassLabels needs it (null: the model takes no labels). */
export interface ClassConditioning {
  classEmbedType: 'embedding' | 'timestep' | null;
  numClassEmbeds: number | null;
}

export interface Denoiser {
  /** Images per forward as the sampler steps them. */
  readonly batch: number;
  /** [batch, C, H, W] of the state. */
  readonly sampleShape: [number, number, number, number];
  /** The state x: the sampler writes the start there, and each update overwrites it in place. */
  readonly sampleBuffer: GPUBuffer;
  /** i32 [batch]: each image's timestep, copied in before every forward. */
  readonly timestepBuffer: GPUBuffer;
  /** The model output for the state, [batch, C, H, W], after `record`. */
  readonly epsBuffer: GPUBuffer;
  /** Class-conditional UNets: i32 [batch], written per batch by the sampler. */
  readonly classLabelBuffer?: GPUBuffer;
  readonly config: ClassConditioning;
  /** The network's graph (what the profiler times node by node). */
  readonly compiled: CompiledGraph;
  /** Records one forward (and whatever turns its output into epsBuffer) into `encoder`. */
  record(encoder: GPUCommandEncoder, recorder: Recorder): void;
  /** Before each batch of images [first, first + count): per-batch conditioning (text embeddings). */
  beginBatch?(first: number, count: number): void;
  /** Runs `work` alone on the network's buffers, calls queued in order. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
}
