/**
 * The command line: `main(argv)` parses, runs one subcommand and returns the exit status. A
 * mistake of the user (a bad flag, a missing file, a model the engine cannot run, no GPU) is
 * printed as one `error: ...` line, with a hint where one helps, and gives 2; anything else is a
 * bug and prints its stack with status 1. main never throws.
 */
import process from 'node:process';
import { isSoftwareAdapter } from '../gpu/adapter.ts';
import { GpuUnavailableError } from '../gpu/device.ts';
import { PngError } from '../io/png.ts';
import { SafetensorsError } from '../io/safetensors.ts';
import { TorchFileError } from '../io/torch.ts';
import { CheckpointError } from '../models/paper_checkpoint.ts';
import { ModelLoadError } from '../web/load_model.ts';
import { ModelConfigError } from '../models/unet_2d_config.ts';
import { ModelWeightsError } from '../models/weights.ts';
import { UnsupportedFeatureError } from '../models/unet_2d_model.ts';
import { DdimPipeline } from '../pipeline.ts';
import { SamplerInputError } from '../sampler/ddim.ts';
import { ScheduleError } from '../sampler/schedule.ts';
import { CliError, parseCommandLine, USAGE } from './args.ts';
import { runCommand } from './commands.ts';
import { fastestGpu } from './gpu.ts';
import { GraphLimitError } from '../graph/executor.ts';
import { ModelTooLargeError } from '../gpu/memory_budget.ts';
import { AutoencoderInputError } from '../models/autoencoder_model.ts';
import { NonFiniteOutputError } from '../text_to_image_pipeline.ts';
import { TokenizerError } from '../text/clip_tokenizer.ts';
import type { OpenPipeline } from './run.ts';
import { UserError } from './errors.ts';
import type { CliIo } from './progress.ts';

export type { CliIo } from './progress.ts';
export type { OpenedPipeline, OpenPipeline } from './run.ts';

/** Errors that mean "the input was wrong", not "the program is wrong". */
const USER_ERRORS = [
  UserError,
  GpuUnavailableError,
  ModelConfigError,
  ModelWeightsError,
  SafetensorsError,
  TorchFileError,
  CheckpointError,
  ModelLoadError,
  PngError,
  ScheduleError,
  SamplerInputError,
  UnsupportedFeatureError,
  // An image too large for the adapter's limits: the message gives what it needs and what is allowed.
  GraphLimitError,
  // A model over the GPU memory budget or the adapter's memory: what it needs and what is allowed.
  ModelTooLargeError,
  AutoencoderInputError,
  // Latents or images that came out NaN or infinite (an f16 overflow): said in one line, nothing written.
  NonFiniteOutputError,
  TokenizerError,
];

export interface MainOptions {
  /** Opens the GPU and loads the model; by default requestGpu + DdimPipeline.load. */
  openPipeline?: OpenPipeline;
}

function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    isTTY: !!process.stderr.isTTY,
    // Deno blocks this thread while the GPU works; a worker keeps the progress going meanwhile.
    progressWorker: typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined',
  };
}

/** A fresh device per run, destroyed with the pipeline. */
export const openGpuPipeline: OpenPipeline = async (
  model,
  { batch, backend, precision, gpuMemory, verbose, softwareBatch, onSoftwareAdapter, height, width, onCompileProgress },
) => {
  const gpu = await fastestGpu(backend, precision, gpuMemory, verbose);
  try {
    const software = isSoftwareAdapter(gpu.adapter);
    if (software) onSoftwareAdapter?.(gpu.adapterName);
    const pipeline = await DdimPipeline.load(gpu, model, {
      batch: software && softwareBatch !== undefined ? softwareBatch : batch,
      precision,
      height,
      width,
      onCompileProgress,
    });
    return {
      pipeline,
      close() {
        pipeline.destroy();
        gpu.device.destroy();
      },
    };
  } catch (error) {
    gpu.device.destroy();
    throw error;
  }
};

/** Runs the command line `argv` (without the program name) and returns its exit status. */
export async function main(argv: string[], io: CliIo = processIo(), options: MainOptions = {}): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    if ('help' in parsed) {
      io.stdout(`${USAGE[parsed.command]}\n`);
      return 0;
    }
    await runCommand(parsed, { io, openPipeline: options.openPipeline ?? openGpuPipeline });
    return 0;
  } catch (error) {
    if (USER_ERRORS.some((kind) => error instanceof kind)) {
      const message = (error as Error).message;
      io.stderr(`error: ${message}\n`);
      if (error instanceof CliError && error.hint) io.stderr(`${error.hint}\n`);
      return 2;
    }
    const stack = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
    io.stderr(`error: unexpected failure (a bug; please report it):\n${stack}\n`);
    return 1;
  }
}
