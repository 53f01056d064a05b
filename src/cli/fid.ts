/**
 * The paper's FID mode: `sample --n 50000 --out-dir DIR [--shard K/N]` writes image i as
 * DIR/<i>.png (six digits or more), each file whole or not at all (writeFileAtomic), as soon as
 * its batch is done. A rerun of the same command resumes: the images already there are kept,
 * the missing ones made, none twice. Image i is made from the seed's latents and noise of image
 * i (firstImage), so it is the same whatever the batch, the sharding or the interruptions.
 * `--shard K/N` takes blocks K, K + N, ... of FID_BLOCK images, so that N processes (a Slurm
 * array, a Kubernetes indexed Job) split one run without talking to each other. The folder's
 * RUN_FILE records what its images are made with, so that a rerun with other settings (another
 * seed, steps, model) is refused instead of mixing two runs' images.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tensorToRgba } from '../io/image.ts';
import { encodePng } from '../io/png.ts';
import { serializeSafetensors } from '../io/safetensors.ts';
import type { TimestepSpacing } from '../sampler/schedule.ts';
import { CliError, FID_BLOCK, type SampleArgs, type Shard } from './args.ts';
import { batchFor, describeDevice, f32Tensor, type Model, type RunDeps, withPipeline } from './run.ts';
import { writeFileAtomic } from './files.ts';
import { plural, rate } from './progress.ts';

/** DIR/<i>.png: six digits, more past 999999, so names sort as the images do. */
export function imageFileName(index: number): string {
  return `${String(index).padStart(6, '0')}.png`;
}

export function latentFileName(index: number): string {
  return `${String(index).padStart(6, '0')}.xT.safetensors`;
}

/** The run's settings, in the folder beside its images. */
export const RUN_FILE = 'ddim_run.json';

const IMAGE_FILE = /^(\d{6,})\.png$/;
const LATENT_FILE = /^(\d{6,})\.xT\.safetensors$/;
/** writeFileAtomic's temporary files (name.<12 hex>.tmp), left by an interrupted run. */
const TEMPORARY_FILE = /^(\d{6,}\.(png|xT\.safetensors)|ddim_run\.json)\.[0-9a-f]{12}\.tmp$/;

/** The images of `count` this shard makes, as [start, end) ranges of whole blocks. */
export function shardRanges(count: number, shard: Shard, block = FID_BLOCK): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = shard.index * block; start < count; start += shard.count * block) {
    ranges.push([start, Math.min(start + block, count)]);
  }
  return ranges;
}

/**
 * The images of `ranges` not yet in the folder, as [start, end) runs. An image is there when its
 * PNG is (and, with latents asked for, its latent file: it is written first).
 */
export function missingRuns(ranges: [number, number][], done: Set<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (const [start, end] of ranges) {
    for (let i = start; i < end; i++) {
      if (done.has(i)) continue;
      const last = runs[runs.length - 1];
      if (last && last[1] === i) last[1] = i + 1;
      else runs.push([i, i + 1]);
    }
  }
  return runs;
}

/** The finished images in `dir`, and the temporary files an interrupted run left. */
export function scanFolder(dir: string, withLatents: boolean): { done: Set<number>; temporary: string[] } {
  const images = new Set<number>();
  const latents = new Set<number>();
  const temporary: string[] = [];
  for (const name of readdirSync(dir)) {
    const image = IMAGE_FILE.exec(name);
    if (image) images.add(Number(image[1]));
    const latent = LATENT_FILE.exec(name);
    if (latent) latents.add(Number(latent[1]));
    if (TEMPORARY_FILE.test(name)) temporary.push(name);
  }
  const done = withLatents ? new Set([...images].filter((i) => latents.has(i))) : images;
  return { done, temporary };
}

export async function sampleToFolder(
  args: SampleArgs,
  deps: RunDeps,
  model: Model,
  run: { steps: number; spacing: TimestepSpacing; count: number; classLabels?: Int32Array },
): Promise<void> {
  const { io } = deps;
  const dir = args.outDir!;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new CliError(`cannot make --out-dir '${dir}': ${(error as Error).message}`);
  }
  // Not the number of images: image i does not depend on it, so a run may be extended with a larger --n.
  await checkRunFile(dir, {
    steps: run.steps,
    spacing: run.spacing,
    sampler: args.sigmaHat ? 'sigma-hat' : `ddim eta=${args.eta}`,
    clip: args.clip ?? model.schedule.clipSample,
    seed: args.seed,
    // One label for all is recorded once.
    classLabels: run.classLabels
      ? (run.classLabels.every((k) => k === run.classLabels![0]) ? [run.classLabels[0]] : [...run.classLabels])
      : null,
    model: model.files.config,
    scheduler: model.files.schedulerConfig ?? null,
  });
  const shard = args.shard ?? { index: 0, count: 1 };
  const ranges = shardRanges(run.count, shard);
  const mine = ranges.reduce((sum, [start, end]) => sum + end - start, 0);
  const { done, temporary } = scanFolder(dir, args.saveLatents === true);
  // Ours, and never a finished image: a half-written file from an interrupted run.
  for (const name of temporary) rmSync(join(dir, name), { force: true });
  const runs = missingRuns(ranges, done);
  const todo = runs.reduce((sum, [start, end]) => sum + end - start, 0);
  const shardText = args.shard ? ` (shard ${shard.index}/${shard.count})` : '';
  if (todo === 0) {
    io.stdout(`all ${plural(mine, 'image')}${shardText} are already in ${dir}\n`);
    return;
  }
  if (todo < mine) io.stderr(`resuming: ${mine - todo} of ${plural(mine, 'image')}${shardText} already in ${dir}\n`);
  const [c, h, w] = model.shape;
  const batch = batchFor(args, todo);
  const start = performance.now();
  let written = 0;
  const adapter = await withPipeline(deps, model, batch, args, async (pipeline) => {
    for (const [runStart, runEnd] of runs) {
      for (let first = runStart; first < runEnd; first += batch) {
        const n = Math.min(batch, runEnd - first);
        const result = await pipeline.sample({
          steps: run.steps,
          spacing: run.spacing,
          eta: args.eta,
          sigmaHat: args.sigmaHat,
          clip: args.clip,
          seed: args.seed,
          count: n,
          firstImage: first,
          classLabels: run.classLabels?.subarray(first, first + n),
        });
        const latents = args.saveLatents ? await pipeline.latents(args.seed, n, first) : undefined;
        for (let i = 0; i < n; i++) {
          // The latent first: a PNG on disk means its image is complete.
          if (latents) {
            const xT = latents.slice(i * c * h * w, (i + 1) * c * h * w);
            await writeFileAtomic(join(dir, latentFileName(first + i)), serializeSafetensors({ xT: f32Tensor(xT, [1, c, h, w]) }));
          }
          const rgba = tensorToRgba(result.x0, n, c, h, w, i);
          await writeFileAtomic(join(dir, imageFileName(first + i)), await encodePng(rgba, w, h));
        }
        written += n;
        io.stderr(`${written} of ${plural(todo, 'image')} written (images ${first}..${first + n - 1})\n`);
      }
    }
    return describeDevice(pipeline);
  });
  const seconds = (performance.now() - start) / 1000;
  io.stdout(
    `${plural(run.steps, 'step')} x ${plural(written, 'image')}${shardText} in ${rate(written, seconds)} on ${adapter} -> ${dir}\n`,
  );
}

/**
 * Writes the run's settings into the folder, or checks them against those already there: every
 * shard and every resumed run writes the same file, and a different one names what differs.
 */
async function checkRunFile(dir: string, settings: Record<string, unknown>): Promise<void> {
  const path = join(dir, RUN_FILE);
  const text = `${JSON.stringify(settings, null, 1)}\n`;
  if (existsSync(path)) {
    let before: Record<string, unknown>;
    try {
      before = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new CliError(`--out-dir '${dir}': ${RUN_FILE} is not valid JSON (${(error as Error).message})`);
    }
    const differing = Object.keys(settings).filter((key) => JSON.stringify(before?.[key]) !== JSON.stringify(settings[key]));
    if (differing.length > 0) {
      const shown = differing.filter((k) => k !== 'model' && k !== 'scheduler').map((k) =>
        `${k} ${JSON.stringify(before?.[k])} there, ${JSON.stringify(settings[k])} now`
      );
      if (differing.includes('model') || differing.includes('scheduler')) shown.push('another model or scheduler config');
      throw new CliError(
        `--out-dir '${dir}' holds the images of another run (${shown.join('; ')})`,
        'resume with the same settings, or pick another --out-dir',
      );
    }
    return;
  }
  await writeFileAtomic(path, new TextEncoder().encode(text));
}
