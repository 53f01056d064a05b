/**
 * The command line's new options: FID mode (--out-dir numbered PNGs, resume, --shard), --class
 * for class-conditional models (and 'class_labels' in eps's input), --sigma-hat. The GPU runs
 * use a tiny random model (8x8) and the 16x16 class-conditional golden model, 1 or 2 steps.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageFileName, missingRuns, RUN_FILE, scanFolder, shardRanges } from '../src/cli/fid.ts';
import { main } from '../src/cli/main.ts';
import { parseSafetensors, serializeSafetensors, toFloat32 } from '../src/io/safetensors.ts';
import { goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { tinyModelFiles, writeTinyModel } from './util/tiny_model.ts';

const CLASSCOND = '../shared/golden/checkpoints/classcond';

async function cli(argv: string[], gpu = true): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: (t: string) => void (stdout += t),
    stderr: (t: string) => void (stderr += t),
    isTTY: false,
    plainProgressMs: 3_600_000,
  };
  const code = await main(
    argv,
    io,
    gpu ? {} : {
      openPipeline: () => {
        throw new Error('the GPU was opened although the input was invalid');
      },
    },
  );
  return { code, stdout, stderr };
}

let work = '';
let tiny = '';

function setup(): void {
  work = mkdtempSync(join(tmpdir(), 'ddim-fid-'));
  tiny = writeTinyModel(join(work, 'tiny'), tinyModelFiles(7));
}

// ---------------------------------------------------------------------------------------------
// On the CPU

const plan = suite('fid plan and flags');
plan.before(setup);
plan.after(() => rmSync(work, { recursive: true, force: true }));

plan('shards split the images into whole blocks, each image in exactly one shard', () => {
  assert.equal(shardRanges(250, { index: 0, count: 2 }, 100), [[0, 100], [200, 250]]);
  assert.equal(shardRanges(250, { index: 1, count: 2 }, 100), [[100, 200]]);
  assert.equal(shardRanges(50, { index: 3, count: 4 }, 10), [[30, 40]]);
  for (const count of [1, 99, 1000, 50000]) {
    for (const shards of [1, 3, 8]) {
      const seen = new Uint8Array(count);
      for (let k = 0; k < shards; k++) for (const [a, b] of shardRanges(count, { index: k, count: shards })) seen.fill(1, a, b);
      assert.ok(seen.every((v) => v === 1), `${count} images over ${shards} shards`);
    }
  }
  assert.equal(missingRuns([[0, 6], [10, 12]], new Set([0, 3, 4, 11])), [[1, 3], [5, 6], [10, 11]]);
  assert.equal(imageFileName(42), '000042.png');
  assert.equal(imageFileName(1234567), '1234567.png');
});

plan('a folder scan counts finished files only', () => {
  const dir = join(work, 'scan');
  mkdirSync(dir);
  for (const name of ['000000.png', '000001.png', '000001.xT.safetensors', '000002.png.0123456789ab.tmp', 'notes.txt', '12.png']) {
    writeFileSync(join(dir, name), '');
  }
  assert.equal([...scanFolder(dir, false).done].sort(), [0, 1]);
  assert.equal([...scanFolder(dir, true).done], [1], 'with latents, an image needs both files');
  assert.equal(scanFolder(dir, false).temporary, ['000002.png.0123456789ab.tmp']);
});

plan('flag mistakes: exit 2, one line, nothing opened or written', async () => {
  const cases: [string[], RegExp][] = [
    [['--shard', '1/2'], /--shard needs --out-dir/],
    [['--out-dir', join(work, 'x'), '--shard', '2/2'], /--shard must be K\/N with N ≥ 1 and K from 0 to N-1, got '2\/2'/],
    [['--out-dir', join(work, 'x'), '--shard', 'a/b'], /--shard must be K\/N/],
    [['--out-dir', join(work, 'x'), '--xT', 'a.safetensors'], /--xT does not go with --out-dir/],
    [['--sigma-hat', '--eta', '1'], /--sigma-hat is its own sampler/],
    [['--class', '1,x'], /--class must be a class label/],
    [['--model', tiny, '--class', '1'], /--class: this model is not class-conditional/],
    [['--model', CLASSCOND, '--n', '2'], /--class: this model is class-conditional \(10 classes: 0\.\.9\): give a class label/],
    [['--model', CLASSCOND, '--n', '2', '--class', '1,2,3'], /--class: 3 class labels for 2 images/],
    [['--model', CLASSCOND, '--n', '2', '--class', '10'], /class label 10 is outside 0\.\.9/],
  ];
  // eps: a class-conditional model's input needs 'class_labels'; an unconditional one refuses them.
  const noLabels = join(work, 'no-labels.safetensors');
  const withLabels = join(work, 'with-labels.safetensors');
  const x16 = { dtype: 'F32' as const, shape: [1, 3, 16, 16], data: new Float32Array(768) };
  const x8 = { dtype: 'F32' as const, shape: [1, 3, 8, 8], data: new Float32Array(192) };
  const t1 = { dtype: 'I32' as const, shape: [1], data: Int32Array.of(5) };
  writeFileSync(noLabels, serializeSafetensors({ x: x16, t: t1 }));
  writeFileSync(withLabels, serializeSafetensors({ x: x8, t: t1, class_labels: { dtype: 'I32', shape: [1], data: Int32Array.of(1) } }));
  cases.push(
    [['eps', '--model', CLASSCOND, '--in', noLabels, '--out', join(work, 'x', 'e.safetensors')], /has no tensor 'class_labels'/],
    [
      ['eps', '--model', tiny, '--in', withLabels, '--out', join(work, 'x', 'e.safetensors')],
      /holds 'class_labels' but model .* is not class-conditional/,
    ],
  );
  for (const [argv, pattern] of cases) {
    const result = await cli(argv, false);
    assert.is(result.code, 2, `${argv.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
  }
  assert.not.ok(existsSync(join(work, 'x')));
});

plan.run();

// ---------------------------------------------------------------------------------------------
// On the GPU

const runs = suite('fid and class runs');
runs.before(setup);
runs.after(() => rmSync(work, { recursive: true, force: true }));

runs('--out-dir: numbered PNGs; an interrupted run resumes with other batches, each image as in one run', async () => {
  const whole = join(work, 'whole');
  const resumed = join(work, 'resumed');
  const base = ['--model', tiny, '--steps', '2', '--seed', '9', '--eta', '1'];
  let result = await cli([...base, '--n', '5', '--batch', '2', '--out-dir', whole]);
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${result.stdout.trim()}`);
  assert.equal(readdirSync(whole).sort(), [...[0, 1, 2, 3, 4].map(imageFileName), RUN_FILE]);
  // Another seed (or steps, model, ...) into the same folder would mix two runs: refused, nothing written.
  result = await cli([...base.slice(0, -4), '--seed', '10', '--eta', '1', '--n', '5', '--out-dir', whole]);
  assert.is(result.code, 2);
  assert.match(result.stderr, /holds the images of another run \(seed 9 there, 10 now\)/);
  // "Interrupted": the first 3 images made, one lost, and a half-written file left behind.
  result = await cli([...base, '--n', '3', '--batch', '3', '--out-dir', resumed, '--save-latents']);
  assert.is(result.code, 0, result.stderr);
  rmSync(join(resumed, imageFileName(1)));
  writeFileSync(join(resumed, `${imageFileName(3)}.0123456789ab.tmp`), 'half');
  result = await cli([...base, '--n', '5', '--batch', '1', '--out-dir', resumed, '--save-latents']);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stderr, /resuming: 2 of 5 images already/);
  assert.match(result.stdout, /x 3 images/);
  const names = readdirSync(resumed).sort();
  assert.equal(names.filter((n) => n.endsWith('.png')), [0, 1, 2, 3, 4].map(imageFileName));
  assert.is(names.length, 11, 'five PNGs, five latents and the run file, no temporary file');
  for (let i = 0; i < 5; i++) {
    assert.equal(readFileSync(join(resumed, imageFileName(i))), readFileSync(join(whole, imageFileName(i))), `image ${i}`);
  }
  result = await cli([...base, '--n', '5', '--out-dir', resumed, '--save-latents']);
  assert.match(result.stdout, /all 5 images are already in/);
  const latent = parseSafetensors(new Uint8Array(readFileSync(join(resumed, '000004.xT.safetensors')))).tensors.get('xT')!;
  assert.equal(latent.shape, [1, 3, 8, 8]);
});

runs('--class with the class-conditional model; eps reads class_labels from --in', async () => {
  const golden = readGolden('checkpoints/checkpoints.safetensors');
  const input = join(work, 'classcond-in.safetensors');
  const x = goldenF32(golden, 'classcond.x');
  const t = goldenI32(golden, 'classcond.t');
  const labels = goldenI32(golden, 'classcond.class_labels');
  writeFileSync(
    input,
    serializeSafetensors({
      x: { dtype: 'F32', shape: [3, 3, 16, 16], data: x },
      t: { dtype: 'I32', shape: [3], data: t },
      class_labels: { dtype: 'I32', shape: [3], data: labels },
    }),
  );
  const out = join(work, 'classcond-eps.safetensors');
  let result = await cli(['eps', '--model', CLASSCOND, '--in', input, '--out', out]);
  assert.is(result.code, 0, result.stderr);
  const eps = toFloat32(parseSafetensors(new Uint8Array(readFileSync(out))).tensors.get('eps')!);
  const expected = goldenF32(golden, 'classcond.eps');
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < eps.length; i++) {
    diff += (eps[i] - expected[i]) ** 2;
    ref += expected[i] ** 2;
  }
  console.log(`    eps via the CLI: rel L2 ${Math.sqrt(diff / ref).toExponential(2)}`);
  assert.ok(Math.sqrt(diff / ref) < 2e-4);
  const png = join(work, 'classes.png');
  result = await cli(['--model', CLASSCOND, '--n', '2', '--steps', '1', '--class', '3,8', '--sigma-hat', '--out', png]);
  assert.is(result.code, 0, result.stderr);
  assert.ok(existsSync(png));
});

runs.run();
