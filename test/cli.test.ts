/**
 * The command line, run in-process through main() with captured output, in a temporary folder.
 * Every bad input must give status 2, a message that names the problem, and no file; the GPU runs
 * are kept tiny (a few images, 1 or 2 steps) and share one loaded pipeline where they can.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SOFTWARE_DEFAULT_IMAGES } from '../src/cli/commands.ts';
import { main, openGpuPipeline, type OpenPipeline } from '../src/cli/main.ts';
import { isSoftwareAdapter } from '../src/gpu/adapter.ts';
import { defaultModelDir, findModelFiles } from '../src/cli/model_dir.ts';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { decodePng, encodePng } from '../src/io/png.ts';
import { parseSafetensors, serializeSafetensors, toFloat32 } from '../src/io/safetensors.ts';
import { countPrograms } from '../src/gpu/kernel.ts';
import { DdimPipeline, type ModelFiles } from '../src/pipeline.ts';
import { DdimSampler } from '../src/sampler/ddim.ts';
import { compare, goldenF32, goldenI32, readGolden } from './util/compare.ts';

const IMAGE = 3 * 32 * 32;
const MODEL = 'weights/emoji32';

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** A pipeline-opener that fails the test: bad inputs must be caught before any GPU work. */
const noGpu: OpenPipeline = () => {
  throw new Error('the GPU was opened although the input was invalid');
};

async function cli(argv: string[], options: { openPipeline?: OpenPipeline; isTTY?: boolean } = {}): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  // Plain progress lines (stderr not a terminal) are left to test/progress.test.ts: here, none.
  const io = {
    stdout: (t: string) => void (stdout += t),
    stderr: (t: string) => void (stderr += t),
    isTTY: options.isTTY ?? false,
    plainProgressMs: 3_600_000,
  };
  const code = await main(argv, io, { openPipeline: options.openPipeline });
  return { code, stdout, stderr };
}

function readTensor(path: string, key: string): { data: Float32Array; shape: number[] } {
  const entry = parseSafetensors(new Uint8Array(readFileSync(path))).tensors.get(key);
  if (!entry) throw new Error(`${path} has no ${key}`);
  return { data: toFloat32(entry), shape: entry.shape };
}

function writeTensors(path: string, tensors: Record<string, { data: Float32Array | Int32Array; shape: number[] }>): void {
  const out: Parameters<typeof serializeSafetensors>[0] = {};
  for (const [key, t] of Object.entries(tensors)) {
    out[key] = { dtype: t.data instanceof Int32Array ? 'I32' : 'F32', shape: t.shape, data: t.data };
  }
  writeFileSync(path, serializeSafetensors(out));
}

function modelFiles(dir = MODEL): ModelFiles {
  return {
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
    schedulerConfig: JSON.parse(readFileSync(`${dir}/scheduler_config.json`, 'utf8')),
  };
}

// ---------------------------------------------------------------------------------------------
// Input errors: no GPU needed

const errors = suite('cli input errors');
let folder = '';

errors.before(async () => {
  folder = mkdtempSync(join(tmpdir(), 'ddim-cli-errors-'));
  // Fixtures the bad runs read; the listing of the folder must stay exactly this.
  const small = await encodePng(new Uint8Array(16 * 16 * 4).fill(200), 16, 16);
  writeFileSync(join(folder, 'small.png'), small);
  writeTensors(join(folder, 'wrong-key.safetensors'), { latents: { data: new Float32Array(2 * IMAGE), shape: [2, 3, 32, 32] } });
  writeTensors(join(folder, 'wrong-shape.safetensors'), { xT: { data: new Float32Array(2 * 3 * 16 * 16), shape: [2, 3, 16, 16] } });
  writeTensors(join(folder, 'bad-t.safetensors'), {
    x: { data: new Float32Array(2 * IMAGE), shape: [2, 3, 32, 32] },
    t: { data: Int32Array.of(5, 1000), shape: [2] },
  });
  writeTensors(join(folder, 'two-latents.safetensors'), { xT: { data: new Float32Array(2 * IMAGE), shape: [2, 3, 32, 32] } });
  mkdirSync(join(folder, 'no-weights'));
  writeFileSync(join(folder, 'no-weights', 'config.json'), readFileSync(`${MODEL}/config.json`));
});

errors.after(() => {
  rmSync(folder, { recursive: true, force: true });
});

const FIXTURES = [
  'bad-t.safetensors',
  'no-weights',
  'small.png',
  'two-latents.safetensors',
  'wrong-key.safetensors',
  'wrong-shape.safetensors',
];

/** Runs a bad command: status 2, the expected words in the message, and no new file. */
async function rejects(argv: string[], ...expected: (string | RegExp)[]): Promise<void> {
  const out = join(folder, 'out.png');
  const full = argv.map((a) => a.replace('{dir}', folder));
  // The output goes first, so that a flag left without its value is the last argument.
  if (!full.some((a) => a.startsWith('--out'))) full.splice(full[0]?.startsWith('-') === false ? 1 : 0, 0, '--out', out);
  const result = await cli(full, { openPipeline: noGpu });
  const firstLine = result.stderr.split('\n')[0];
  console.log(`    ${argv.join(' ').replaceAll('{dir}/', '').padEnd(44)} -> ${result.code}  ${firstLine}`);
  assert.is(result.code, 2, `status for ${full.join(' ')}:\n${result.stderr}`);
  assert.ok(firstLine.startsWith('error: '), `one error line: ${result.stderr}`);
  for (const e of expected) {
    assert.ok(typeof e === 'string' ? result.stderr.includes(e) : e.test(result.stderr), `message names ${e}: ${result.stderr}`);
  }
  assert.is(result.stdout, '');
  assert.equal(readdirSync(folder).sort(), FIXTURES, 'no output file left behind');
  assert.equal(readdirSync(join(folder, 'no-weights')), ['config.json']);
}

errors('unknown flags, subcommands and stray arguments give the usage line', async () => {
  await rejects(['--frobnicate'], "unknown option '--frobnicate'", 'usage: sample');
  await rejects(['encode', '--seed', '3'], "unknown option '--seed' for encode", 'usage: sample encode');
  await rejects(['paint'], "unknown command 'paint'", 'usage: sample');
  // `npm run sample --n 1` (no --) gives the CLI only '1': the hint says where the flag went.
  await rejects(['1'], "unknown command '1'", 'with npm run, put the flags after --');
  await rejects(['--n', '2', 'stray'], "unexpected argument 'stray'");
  await rejects(['--n'], '--n needs a value');
  await rejects(['--n', '--clip'], '--n needs a value (to give one that starts with');
  await rejects(['--clip=yes'], '--clip takes no value');
});

errors('a PNG output named for another format is refused', async () => {
  await rejects(['--out', '{dir}/grid.jpg'], "--out '", 'written as PNG, not .jpg', 'grid.png');
  await rejects(['decode', '--latent', '{dir}/two-latents.safetensors', '--out', '{dir}/d.JPEG'], 'not .JPEG');
  await rejects(['interpolate', '--seed-a', '1', '--seed-b', '2', '--out', '{dir}/i.webp'], 'not .webp');
});

errors('out-of-range and malformed values name the flag', async () => {
  await rejects(['--steps', '0'], "--steps must be a positive integer, got '0'");
  await rejects(['--steps', '1001'], '--steps must be from 1 to 1000');
  await rejects(['--eta', '2'], "--eta must be a number from 0 to 1, got '2'");
  await rejects(['--eta', 'x'], "--eta must be a number from 0 to 1, got 'x'");
  await rejects(['--n', 'abc'], "--n must be a positive integer, got 'abc'");
  await rejects(['--n', '2.5'], "--n must be a positive integer, got '2.5'");
  await rejects(['--batch', '0'], "--batch must be a positive integer, got '0'");
  await rejects(['--seed=-1'], '--seed must be an integer from 0 to 2^53-1');
  await rejects(['--seed', '9007199254740993'], '--seed must be an integer');
  await rejects(['--skip', 'cubic'], "--skip must be one of uniform, quad, leading, trailing, linspace, got 'cubic'");
  await rejects(['--backend', 'metal'], "--backend must be one of auto, native, dawn, got 'metal'");
  await rejects(['--precision', 'f64'], "--precision must be one of f32, f16, f16-packed, got 'f64'");
  await rejects(['--scale', '0'], "--scale must be a positive integer, got '0'");
  await rejects(['interpolate', '--seed-a', '1', '--seed-b', '2', '--frames', '1'], '--frames must be at least 2');
  await rejects(['interpolate', '--seed-a', '1'], 'needs both --seed-a and --seed-b');
  await rejects(['decode'], 'decode needs --latent');
  await rejects(['encode'], 'encode needs at least one --image');
  await rejects(['eps'], 'eps needs --in');
  await rejects(['--noise', '{dir}/wrong-key.safetensors'], '--noise is only used with --eta above 0');
});

errors('model folders: missing, not a folder, no weights', async () => {
  await rejects(['--model', '{dir}/missing-model'], `model folder '${folder}/missing-model' does not exist`, 'fetch-model');
  await rejects(['--model', '{dir}/small.png'], 'is not a folder');
  await rejects(
    ['--model', '{dir}/no-weights'],
    `model folder '${folder}/no-weights' has config.json but no diffusion_pytorch_model.safetensors`,
  );
  await rejects(['--model', folder], 'has no config.json (nor unet/config.json)');
});

errors('input files: missing, wrong size, wrong key or shape, bad timesteps', async () => {
  await rejects(
    ['encode', '--image', '{dir}/missing.png', '--out', '{dir}/z.safetensors'],
    `cannot read image '${folder}/missing.png': no such file`,
  );
  await rejects(
    ['encode', '--image', '{dir}/small.png', '--out', '{dir}/z.safetensors'],
    `image '${folder}/small.png' is 16x16 but the model takes 32x32 images`,
  );
  await rejects(['encode', '--image', '{dir}/wrong-key.safetensors', '--out', '{dir}/z.safetensors'], 'is not a PNG');
  await rejects(['--xT', '{dir}/missing.safetensors'], 'cannot read --xT file', 'no such file');
  await rejects(['--xT', '{dir}/wrong-key.safetensors'], "has no tensor 'xT' (it has 'latents')");
  await rejects(['--xT', '{dir}/wrong-shape.safetensors'], "tensor 'xT' has shape [2, 3, 16, 16] but this model needs [N, 3, 32, 32]");
  await rejects(['--xT', '{dir}/small.png'], 'is not a valid safetensors file');
  await rejects(['--xT', '{dir}/two-latents.safetensors', '--n', '3'], '--n 3 disagrees with the 2 latents in --xT');
  await rejects(['--eta', '1', '--steps', '2', '--noise', '{dir}/wrong-key.safetensors'], "--noise '", "has no tensor 'noise'");
  await rejects(['--eta', '1', '--steps', '2', '--n', '2', '--noise', '{dir}/two-latents.safetensors'], "has no tensor 'noise'");
  await rejects(['decode', '--latent', '{dir}/wrong-shape.safetensors'], 'has shape [2, 3, 16, 16]');
  await rejects(
    ['eps', '--in', '{dir}/bad-t.safetensors', '--out', '{dir}/e.safetensors'],
    "t[1] = 1000 is outside the model's timesteps 0..999",
  );
  await rejects(['eps', '--in', '{dir}/wrong-key.safetensors', '--out', '{dir}/e.safetensors'], "has no tensor 'x'");
});

errors('outputs: a missing folder, a folder as the file, one file twice', async () => {
  await rejects(['--out', '{dir}/nowhere/grid.png'], `folder '${folder}/nowhere' does not exist`);
  await rejects(['--out', '{dir}/no-weights'], 'it is a folder');
  await rejects(['--out', '{dir}/a.png', '--out-tensor', '{dir}/a.png'], '--out and --out-tensor both name');
  await rejects(
    ['encode', '--image', '{dir}/small.png', '--out', '{dir}/nowhere/z.safetensors'],
    `folder '${folder}/nowhere' does not exist`,
  );
});

errors('an unexpected failure gives status 1 with the stack, and writes nothing', async () => {
  const result = await cli(['--n', '1', '--steps', '1', '--out', join(folder, 'out.png')], {
    openPipeline: () => Promise.reject(new Error('simulated device failure')),
  });
  console.log(`    ${result.stderr.split('\n').slice(0, 2).join(' | ')}`);
  assert.is(result.code, 1);
  assert.ok(result.stderr.includes('simulated device failure') && /\n\s+at /.test(result.stderr), result.stderr);
  assert.equal(readdirSync(folder).sort(), FIXTURES);
});

errors('--help on every command prints its usage and exits 0', async () => {
  for (const command of [[], ['sample'], ['encode'], ['decode'], ['interpolate'], ['eps']]) {
    const result = await cli([...command, '--help'], { openPipeline: noGpu });
    assert.is(result.code, 0);
    assert.ok(result.stdout.startsWith(`usage: sample ${command[0] && command[0] !== 'sample' ? command[0] : '[sample]'}`), result.stdout);
    assert.is(result.stderr, '');
  }
});

errors('model folders in both layouts; the default model is found from the code, not the cwd', () => {
  const dir = defaultModelDir();
  assert.ok(dir.endsWith(join('weights', 'emoji32')), dir);
  assert.is(findModelFiles(dir).layout, 'flat');
  const pipelineDir = join(folder, 'pipeline-layout');
  mkdirSync(join(pipelineDir, 'unet'), { recursive: true });
  mkdirSync(join(pipelineDir, 'scheduler'));
  for (const f of ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'scheduler/scheduler_config.json']) {
    writeFileSync(join(pipelineDir, f), '{}');
  }
  try {
    const found = findModelFiles(pipelineDir);
    assert.is(found.layout, 'pipeline');
    assert.is(found.weights, join(pipelineDir, 'unet', 'diffusion_pytorch_model.safetensors'));
    assert.is(found.scheduler, join(pipelineDir, 'scheduler', 'scheduler_config.json'));
  } finally {
    rmSync(pipelineDir, { recursive: true });
  }
});

errors.run();

// ---------------------------------------------------------------------------------------------
// Runs on the GPU

const gpuRuns = suite('cli on the GPU');
let gpu: Gpu;
/** Batch 1: every image costs one forward, with no padding. */
let shared: DdimPipeline;
let work = '';
const useShared: OpenPipeline = () => Promise.resolve({ pipeline: shared, close() {} });
let sampled: Float32Array;

gpuRuns.before(async () => {
  work = mkdtempSync(join(tmpdir(), 'ddim-cli-'));
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}`);
  shared = await DdimPipeline.load(gpu, modelFiles(), { batch: 1 });
});

gpuRuns.after(() => {
  // Optional: when before() failed, uvu runs this anyway, and a throw here would hide its error.
  shared?.destroy();
  gpu?.device.destroy();
  rmSync(work, { recursive: true, force: true });
});

gpuRuns('sample --n 2 --steps 2: PNG of the grid, and x0 equal bit for bit to a direct pipeline run', async () => {
  const out = join(work, 'grid.png');
  const tensor = join(work, 'x0.safetensors');
  // The command's own GPU and pipeline (batch 2), the default model found by itself.
  const result = await cli(['--n', '2', '--steps', '2', '--seed', '7', '--out', out, '--out-tensor', tensor]);
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${result.stdout.trim()}`);
  assert.match(result.stdout, /^2 steps x 2 images in [\d.]+ s \([\d.]+ images\/s\) on .+ -> .*grid\.png, .*x0\.safetensors\n$/);
  assert.is(result.stderr, '', 'no progress bar when stderr is not a terminal');
  const png = await decodePng(new Uint8Array(readFileSync(out)));
  // Two images in a row: (2·(32 + 2) + 2) x (32 + 2 + 2), scaled by 2.
  assert.equal([png.width, png.height], [140, 72]);
  const x0 = readTensor(tensor, 'x0');
  assert.equal(x0.shape, [2, 3, 32, 32]);
  const direct = await shared.sample({ steps: 2, count: 2, seed: 7 });
  const differing = x0.data.filter((v, i) => !Object.is(v, direct.x0[i])).length;
  console.log(`    CLI (batch 2, own device) vs direct DdimPipeline (batch 1): ${differing} of ${x0.data.length} values differ`);
  assert.is(differing, 0);
  assert.equal(readdirSync(work).sort(), ['grid.png', 'x0.safetensors']);
  sampled = x0.data;
});

gpuRuns('sample without --n: 16 images on a GPU; on a software adapter fewer, said at the start', async () => {
  const out = join(work, 'default.png');
  // What the device's opening reports, in order: the note must come before the first program compiles.
  const events: string[] = [];
  const openPipeline: OpenPipeline = (model, options) =>
    openGpuPipeline(model, {
      ...options,
      onSoftwareAdapter: (name) => {
        events.push('software adapter');
        options.onSoftwareAdapter?.(name);
      },
      onCompileProgress: (progress) => {
        if (events.at(-1) !== 'compiling') events.push('compiling');
        options.onCompileProgress?.(progress);
      },
    });
  const result = await cli(['--steps', '1', '--out', out], { openPipeline });
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${events.join(', then ')}`);
  const software = isSoftwareAdapter(gpu!.adapter);
  const count = software ? SOFTWARE_DEFAULT_IMAGES : 16;
  console.log(`    ${result.stderr.trim() || '(no note)'}`);
  if (software) {
    assert.match(
      result.stderr,
      new RegExp(`^note: .+ is a software adapter \\(the CPU\\): sampling ${count} images, not 16; --n N gives any number\n$`),
    );
    assert.equal(events, ['software adapter', 'compiling']);
  } else {
    assert.is(result.stderr, '');
  }
  assert.match(result.stdout, new RegExp(`^1 steps? x ${count} images in `), result.stdout);
  const png = await decodePng(new Uint8Array(readFileSync(out)));
  const side = Math.ceil(Math.sqrt(count));
  assert.equal([png.width, png.height], [2 * (side * 34 + 2), 2 * (Math.ceil(count / side) * 34 + 2)]);
});

gpuRuns('on a terminal, the GPU programs are counted as they compile, up to n/n, and the line is cleared before the steps', async () => {
  // The command's own device, so that it compiles (from the driver's cache, after before()).
  const result = await cli(['--n', '1', '--steps', '1', '--out', join(work, 'compiled.png')], { isTTY: true });
  assert.is(result.code, 0, result.stderr);
  // Each redraw starts by clearing the line; shown here as '|'.
  const stderr = result.stderr.replaceAll('\r\x1b[K', '|');
  const drawn = [...stderr.matchAll(/\|compiling GPU programs \[[#-]{24}\] (\d+)\/(\d+) /g)].map((m) => [+m[1], +m[2]]);
  const programs = shared.unet.compiled.stats.programs + countPrograms(DdimSampler.shaders(shared.schedule));
  console.log(`    compile line drawn at ${drawn.map(([k, n]) => `${k}/${n}`).join(' ')} (${programs} programs)`);
  assert.ok(drawn.length >= 2, stderr);
  assert.ok(drawn.every(([, n]) => n === programs), JSON.stringify(drawn));
  assert.equal(drawn.at(-1), [programs, programs]);
  // Cleared before the step bar starts on the same line.
  assert.match(stderr.slice(stderr.lastIndexOf('compiling GPU programs')), /^compiling GPU programs [^|]*\|(note: [^\n]+\n)?\|sample \[/);
});

gpuRuns("--xT round trip: the seed's latents, passed back in, give the same image; the bar on a terminal", async () => {
  const latentsFile = join(work, 'latents.safetensors');
  const latents = await shared.latents(7, 1);
  writeTensors(latentsFile, { xT: { data: latents, shape: [1, 3, 32, 32] } });
  const tensor = join(work, 'x0-from-xT.safetensors');
  const result = await cli(['--xT', latentsFile, '--steps', '2', '--out', join(work, 'from-xT.png'), '--out-tensor', tensor], {
    openPipeline: useShared,
    isTTY: true,
  });
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${result.stdout.trim()}`);
  assert.match(result.stdout, /^2 steps x 1 image in /);
  assert.ok(result.stderr.includes('\r\x1b[Ksample [') && result.stderr.includes('step 2/2'), JSON.stringify(result.stderr));
  assert.ok(result.stderr.endsWith('\r\x1b[K'), 'the bar is cleared before the summary');
  const x0 = readTensor(tensor, 'x0');
  assert.equal(x0.shape, [1, 3, 32, 32]);
  const differing = x0.data.filter((v, i) => !Object.is(v, sampled[i])).length;
  console.log(`    --xT vs --seed 7, image 0: ${differing} of ${IMAGE} values differ`);
  assert.is(differing, 0);
});

gpuRuns("eps on the golden inputs matches diffusers' float64 eps", async () => {
  const golden = readGolden('emoji32_unet.safetensors');
  const inputs = join(work, 'inputs.safetensors');
  const x = goldenF32(golden, 'input.x');
  const t = goldenI32(golden, 'input.t');
  writeTensors(inputs, { x: { data: x, shape: [t.length, 3, 32, 32] }, t: { data: t, shape: [t.length] } });
  const out = join(work, 'eps.safetensors');
  const result = await cli(['eps', '--in', inputs, '--out', out], { openPipeline: useShared });
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${result.stdout.trim()}`);
  const eps = readTensor(out, 'eps');
  assert.equal(eps.shape, [4, 3, 32, 32]);
  const c = compare(eps.data, goldenF32(golden, 'output.eps'));
  console.log(
    `    eps vs golden output.eps (t = ${[...t].join(', ')}): rel L2 ${c.relL2.toExponential(2)} (limit 2e-4), max |diff| ${
      c.maxAbs.toExponential(2)
    }`,
  );
  assert.ok(c.relL2 <= 2e-4, `rel L2 ${c.relL2}`);
});

gpuRuns('eps --precision f16: its own device, f16 storage (f16-packed without shader-f16), within 3e-3 of float64', async () => {
  const golden = readGolden('emoji32_unet.safetensors');
  const inputs = join(work, 'inputs.safetensors');
  const out = join(work, 'eps-f16.safetensors');
  const result = await cli(['eps', '--in', inputs, '--out', out, '--precision', 'f16']);
  assert.is(result.code, 0, result.stderr);
  // The summary names the precision that ran; without shader-f16 a note says f16 runs as f16-packed.
  assert.match(result.stdout, /, f16(-packed)? ->/);
  console.log(`    ${result.stdout.trim()}`);
  const c = compare(readTensor(out, 'eps').data, goldenF32(golden, 'output.eps'));
  console.log(`    f16 eps vs golden output.eps: rel L2 ${c.relL2.toExponential(2)} (limit 3e-3), max |diff| ${c.maxAbs.toExponential(2)}`);
  assert.ok(c.relL2 <= 3e-3, `rel L2 ${c.relL2}`);
});

gpuRuns('encode a PNG, then decode the latent into a PNG', async () => {
  const latent = join(work, 'emoji0.safetensors');
  const image = '../shared/golden/images/emoji0.png';
  const encoded = await cli(['encode', '--image', image, '--steps', '2', '--out', latent], { openPipeline: useShared });
  assert.is(encoded.code, 0, encoded.stderr);
  console.log(`    ${encoded.stdout.trim()}`);
  const file = parseSafetensors(new Uint8Array(readFileSync(latent)));
  assert.equal(file.tensors.get('xT')!.shape, [1, 3, 32, 32]);
  assert.equal(file.metadata, { ddim_inversion: 'paper', ddim_spacing: 'uniform', ddim_steps: '2' });
  // The PNG, composited over white, is exactly the golden's first image: encoding that directly
  // gives the same latent, bit for bit.
  const goldenImage = goldenF32(readGolden('emoji32_ddim.safetensors'), 'invert10.x0').slice(0, IMAGE);
  const direct = await shared.encode(goldenImage, { steps: 2 });
  const latentValues = toFloat32(file.tensors.get('xT')!);
  const differing = latentValues.filter((v, i) => !Object.is(v, direct.x0[i])).length;
  console.log(`    encode of emoji0.png vs direct encode of the golden image: ${differing} of ${IMAGE} values differ`);
  assert.is(differing, 0);
  const out = join(work, 'decoded.png');
  // No --steps: decode takes the 2 steps that encode noted in the file.
  const decoded = await cli(['decode', '--latent', latent, '--out', out, '--scale', '1'], { openPipeline: useShared });
  assert.is(decoded.code, 0, decoded.stderr);
  console.log(`    ${decoded.stdout.trim()}`);
  assert.match(decoded.stdout, /^decode: 2 steps \(uniform\) x 1 image/);
  const png = await decodePng(new Uint8Array(readFileSync(out)));
  assert.equal([png.width, png.height], [36, 36]);
  // How close the round trip comes at 2 steps (the golden's 10-step MSE is 0.27): printed, and
  // bounded loosely, as 2 steps reconstruct poorly.
  const original = await decodePng(new Uint8Array(readFileSync(image)));
  let se = 0;
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let k = 0; k < 3; k++) {
        const a = png.rgba[4 * ((y + 2) * 36 + x + 2) + k];
        const o = original.rgba[4 * (y * 32 + x) + k];
        const alpha = original.rgba[4 * (y * 32 + x) + 3];
        const b = (o * alpha + 255 * (255 - alpha)) / 255;
        se += ((a - b) / 127.5) ** 2;
      }
    }
  }
  const mse = se / IMAGE;
  console.log(`    encode -> decode at 2 steps: reconstruction MSE ${mse.toFixed(4)} (model space)`);
  assert.ok(mse < 0.5, `reconstruction MSE ${mse}`);
});

gpuRuns('interpolate --frames 2 --steps 1 writes one row', async () => {
  const out = join(work, 'strip.png');
  const result = await cli(['interpolate', '--seed-a', '3', '--seed-b', '4', '--frames', '2', '--steps', '1', '--out', out], {
    openPipeline: useShared,
  });
  assert.is(result.code, 0, result.stderr);
  console.log(`    ${result.stdout.trim()}`);
  const png = await decodePng(new Uint8Array(readFileSync(out)));
  assert.equal([png.width, png.height], [140, 72]);
});

gpuRuns.run();
