/**
 * `sample.ts convert SRC --out DIR`: a DDIM paper checkpoint (with its config.yml), or a diffusers
 * folder holding diffusion_pytorch_model.bin, into a flat safetensors model folder. Everything is
 * read, converted and checked in memory first; the files are written into a temporary folder
 * beside DIR, which then becomes DIR in one rename, so DIR is never half-written.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { readTorchFile, stateDictEntries } from '../io/torch.ts';
import { toSafetensors } from '../io/weights_file.ts';
import { PICKLE_WEIGHTS, SAFETENSORS_WEIGHTS } from '../models/model_files.ts';
import { convertPaperCheckpoint } from '../models/paper_checkpoint.ts';
import { CliError, type ConvertArgs, usageLine } from './args.ts';
import { readFileBytes, writeFileAtomic } from './files.ts';
import { findModelFiles } from './model_dir.ts';
import type { CliIo } from './progress.ts';
import { pathKind } from '../fs/path_kind.ts';

interface Output {
  files: Record<string, Uint8Array>;
  what: string;
  notes: string[];
}

const json = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);

export async function convert(args: ConvertArgs, io: CliIo): Promise<void> {
  checkOutFolder(args.out);
  const kind = pathKind(args.source);
  if (kind === 'missing') throw new CliError(`convert: '${args.source}' does not exist`, usageLine('convert'));
  const output = kind === 'dir' ? await fromBinFolder(args) : await fromPaperCheckpoint(args);
  await writeFolder(args.out, output.files);
  for (const note of output.notes) io.stderr(`note: ${note}\n`);
  io.stdout(`convert: ${output.what} -> ${args.out} (${Object.keys(output.files).join(', ')})\n`);
}

async function fromPaperCheckpoint(args: ConvertArgs): Promise<Output> {
  if (args.config === undefined) {
    throw new CliError(
      `convert: '${args.source}' is a file, so it needs --config (the paper code's config.yml that goes with it)`,
      usageLine('convert'),
    );
  }
  const checkpoint = await readFileBytes(args.source, 'checkpoint');
  const configText = new TextDecoder().decode(await readFileBytes(args.config, '--config file'));
  let model;
  try {
    model = await convertPaperCheckpoint(checkpoint, configText, { ema: args.ema });
  } catch (error) {
    throw new CliError(`convert '${args.source}' with '${args.config}': ${(error as Error).message}`);
  }
  return {
    files: {
      'config.json': json(model.config),
      [SAFETENSORS_WEIGHTS]: model.weights,
      'scheduler_config.json': json(model.schedulerConfig),
    },
    what: `DDIM paper checkpoint '${args.source}'`,
    notes: model.notes,
  };
}

/** A diffusers folder with .bin weights: the same folder (flat) with safetensors weights. */
async function fromBinFolder(args: ConvertArgs): Promise<Output> {
  if (args.config !== undefined) throw new CliError("convert: --config is for a checkpoint file of the paper's code, not a model folder");
  if (!args.ema) throw new CliError("convert: --no-ema is for a training checkpoint of the paper's code, not a model folder");
  const paths = findModelFiles(args.source);
  if (basename(paths.weights) !== PICKLE_WEIGHTS) {
    throw new CliError(`convert: model folder '${args.source}' already has ${SAFETENSORS_WEIGHTS}; there is nothing to convert`);
  }
  const bytes = await readFileBytes(paths.weights, 'model weights');
  let weights: Uint8Array;
  let count: number;
  try {
    const file = stateDictEntries((await readTorchFile(bytes)).value, PICKLE_WEIGHTS);
    count = file.tensors.size;
    weights = toSafetensors(file, { format: 'pt' });
  } catch (error) {
    throw new CliError(`convert: '${paths.weights}': ${(error as Error).message}`);
  }
  // config.json and the scheduler config go along byte for byte; the weights are checked against
  // the config when the folder is loaded, not here, so models the engine cannot run yet (a
  // class-conditional one) still convert.
  const files: Record<string, Uint8Array> = {
    'config.json': await readFileBytes(paths.config, 'model config'),
    [SAFETENSORS_WEIGHTS]: weights,
  };
  if (paths.scheduler) files['scheduler_config.json'] = await readFileBytes(paths.scheduler, 'scheduler config');
  return { files, what: `'${paths.weights}' (${count} tensors)`, notes: [] };
}

/** --out is new or an empty folder, in a folder that exists. */
function checkOutFolder(out: string): void {
  const kind = pathKind(out);
  if (kind === 'file' || kind === 'other') throw new CliError(`convert: --out '${out}' exists and is not a folder`);
  if (kind === 'dir' && readdirSync(out).length > 0) {
    throw new CliError(`convert: --out '${out}' is a folder that is not empty; nothing in it is replaced`, 'give a new folder');
  }
  const parent = dirname(resolve(out));
  if (pathKind(parent) !== 'dir') throw new CliError(`convert: cannot make --out '${out}': folder '${parent}' does not exist`);
}

async function writeFolder(out: string, files: Record<string, Uint8Array>): Promise<void> {
  const target = resolve(out);
  const temporary = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(temporary);
    for (const [name, bytes] of Object.entries(files)) await writeFileAtomic(join(temporary, name), bytes);
    // Over an empty folder, rename replaces it (POSIX); else it makes the folder.
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true }).catch(() => {});
    if (error instanceof CliError) throw error;
    throw new CliError(`convert: cannot write --out '${out}': ${(error as Error).message}`);
  }
}
