/**
 * Every file of ../shared/golden/checkpoints/: the DDIM paper's checkpoints converted and run
 * against that code's float64 eps, the class-conditional .bin read, the malicious pickle refused
 * with nothing run; `convert` on the command line; and .bin model folders in the pipeline.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/main.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { requestGpu } from '../src/gpu/device.ts';
import { parseSafetensors, toFloat32 } from '../src/io/safetensors.ts';
import { TorchFileError } from '../src/io/torch.ts';
import { parseWeightsFile } from '../src/io/weights_file.ts';
import { convertPaperCheckpoint, parsePaperConfig } from '../src/models/paper_checkpoint.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { scheduleFromConfig } from '../src/sampler/schedule.ts';
import { loadModel, ModelLoadError } from '../src/web/load_model.ts';
import { compare, expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { tinyModelFiles } from './util/tiny_model.ts';
import { type StorageSpec, type TensorSpec, torchSaveLegacy, torchSaveZip } from './util/torch_save.ts';

const DIR = '../shared/golden/checkpoints';
const PWNED = '/tmp/ddim-webgpu-pwned';
const TOLERANCE = 2e-4;
const bytesOf = (path: string) => new Uint8Array(readFileSync(path));
const configYaml = (folder: string) => readFileSync(`${DIR}/${folder}/config.yml`, 'utf8');

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), isTTY: false };
  const code = await main(argv, io, {
    openPipeline: () => {
      throw new Error('the GPU was opened although the input was invalid');
    },
  });
  return { code, stdout, stderr };
}

// ---------------------------------------------------------------------------------------------
// On the CPU: reading, refusing, converting

const files = suite('checkpoint files');
let work = '';

files.before(() => {
  // A stale file from some earlier run would make the check below meaningless; it is never made here.
  if (existsSync(PWNED)) rmSync(PWNED);
  work = mkdtempSync(join(tmpdir(), 'ddim-checkpoints-'));
});

files.after(() => {
  rmSync(work, { recursive: true, force: true });
});

files('evil_bin: refused by the name of the global it asks for, everywhere, and nothing is run', async () => {
  const evil = `${DIR}/evil_bin`;
  try {
    parseWeightsFile(bytesOf(`${evil}/diffusion_pytorch_model.bin`));
    assert.unreachable('the malicious pickle loaded');
  } catch (error) {
    assert.instance(error, TorchFileError);
    assert.match((error as Error).message, /asks for 'posix\.system'/);
  }
  // loadModelDir reads the bytes; readUNet (what DdimPipeline.load runs) refuses them.
  const loaded = await loadModelDir(evil);
  assert.throws(() => readUNet(loaded), /'posix\.system'/);
  for (
    const argv of [['eps', '--model', evil, '--in', `${DIR}/checkpoints.safetensors`, '--out', join(work, 'e.safetensors')], [
      'convert',
      evil,
      '--out',
      join(work, 'evil-out'),
    ]]
  ) {
    const result = await cli(argv);
    console.log(`    ${argv[0]}: ${result.code} ${result.stderr.split('\n')[0].slice(0, 120)}`);
    assert.is(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: .*refused: the pickle asks for 'posix\.system'/);
  }
  assert.equal(readdirSync(work), [], 'no output');
  assert.not.ok(existsSync(PWNED), `${PWNED} exists: something ran the pickle`);
});

files('classcond: the class-conditional .bin reads, and converts to safetensors with the same values', async () => {
  const folder = `${DIR}/classcond`;
  const bin = parseWeightsFile(bytesOf(`${folder}/diffusion_pytorch_model.bin`));
  assert.is(bin.tensors.size, 145);
  assert.equal(bin.tensors.get('class_embedding.weight')!.shape, [10, 128]);
  const loaded = await loadModelDir(folder);
  assert.equal((loaded.config as Record<string, unknown>).num_class_embeds, 10);
  const out = join(work, 'classcond');
  const result = await cli(['convert', folder, '--out', out]);
  console.log(`    ${result.stdout.trim()}`);
  assert.is(result.code, 0, result.stderr);
  assert.equal(readdirSync(out).sort(), ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']);
  assert.equal(readFileSync(join(out, 'config.json')), readFileSync(`${folder}/config.json`), 'config.json copied as it is');
  const converted = parseSafetensors(bytesOf(join(out, 'diffusion_pytorch_model.safetensors')));
  assert.equal([...converted.tensors.keys()].sort(), [...bin.tensors.keys()].sort());
  for (const [name, entry] of bin.tensors) {
    const a = toFloat32(entry);
    const b = toFloat32(converted.tensors.get(name)!);
    assert.ok(a.length === b.length && a.every((v, i) => Object.is(v, b[i])), `${name} unchanged`);
  }
  rmSync(out, { recursive: true });
});

files('loadModel over HTTP takes diffusion_pytorch_model.bin where the safetensors file is missing', async () => {
  const bin = bytesOf(`${DIR}/classcond/diffusion_pytorch_model.bin`);
  const served: Record<string, Uint8Array> = {
    'config.json': bytesOf(`${DIR}/classcond/config.json`),
    'diffusion_pytorch_model.bin': bin,
  };
  const asked: string[] = [];
  const fetchFake = ((url: string) => {
    const file = new URL(url).pathname.slice('/m/'.length);
    asked.push(file);
    const body = served[file];
    return Promise.resolve(body ? new Response(body as Uint8Array<ArrayBuffer>) : new Response('not found', { status: 404 }));
  }) as typeof fetch;
  const loaded = await loadModel('http://models.test/m/', { fetch: fetchFake });
  assert.equal(asked, ['config.json', 'diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin', 'scheduler_config.json']);
  assert.is(loaded.weights.length, bin.length);
  assert.is(parseWeightsFile(loaded.weights).tensors.size, 145);
  delete served['diffusion_pytorch_model.bin'];
  try {
    await loadModel('http://models.test/m/', { fetch: fetchFake });
    assert.unreachable('loaded without weights');
  } catch (error) {
    assert.instance(error, ModelLoadError);
    assert.match((error as Error).message, /no weights at .*safetensors nor .*diffusion_pytorch_model\.bin exists \(HTTP 404\)/);
  }
});

files('paper config.yml: the architecture, and each beta schedule as diffusers or trained_betas', () => {
  const { unet, scheduler, levels } = parsePaperConfig(configYaml('paper_training'));
  assert.is(levels, 2);
  assert.equal(unet.block_out_channels, [32, 64]);
  assert.equal(unet.down_block_types, ['DownBlock2D', 'AttnDownBlock2D']); // attention at 8 px of 16
  assert.equal(unet.up_block_types, ['AttnUpBlock2D', 'UpBlock2D']);
  assert.equal(scheduler, {
    _class_name: 'DDIMScheduler',
    num_train_timesteps: 1000,
    clip_sample: false,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: 'epsilon',
    beta_schedule: 'linear',
    beta_start: 0.0001,
    beta_end: 0.02,
  });
  const withSchedule = (name: string) =>
    parsePaperConfig(configYaml('paper_training').replace('beta_schedule: linear', `beta_schedule: ${name}`));
  assert.is(withSchedule('quad').scheduler.beta_schedule, 'scaled_linear');
  const betas = (name: string) => withSchedule(name).scheduler.trained_betas as number[];
  assert.equal(new Set(betas('const')), new Set([0.02]));
  const sigmoid = betas('sigmoid');
  assert.is(sigmoid.length, 1000);
  assert.ok(Math.abs(sigmoid[0] - (0.0001 + 0.0199 / (1 + Math.exp(6)))) < 1e-15 && sigmoid[999] > sigmoid[500]);
  const jsd = withSchedule('jsd');
  assert.equal([(jsd.scheduler.trained_betas as number[])[0], (jsd.scheduler.trained_betas as number[])[999]], [1 / 1000, 1]);
  assert.ok(jsd.notes.some((n) => n.includes('beta = 1')), 'jsd is flagged');
  for (const name of ['quad', 'const', 'sigmoid']) {
    assert.is(scheduleFromConfig(withSchedule(name).scheduler).numTrainTimesteps, 1000, `${name} loads as a schedule`);
  }
  assert.throws(() => withSchedule('cosine'), /beta_schedule 'cosine' is not one of/);
  assert.throws(() => parsePaperConfig('model: [1, 2'), /not valid YAML/);
  assert.throws(() => parsePaperConfig(configYaml('paper_training').replace('ch: 32', 'ch: 0')), /model\.ch must be a positive integer/);
  assert.throws(
    () => parsePaperConfig(configYaml('paper_training').replace('resamp_with_conv: True', 'resamp_with_conv: False')),
    /resamp_with_conv is false/,
  );
});

files('convert on the command line: the folder, --no-ema, and every mistake leaves --out as it was', async () => {
  const ckpt = `${DIR}/paper_training/ckpt.pth`;
  const config = `${DIR}/paper_training/config.yml`;
  const out = join(work, 'paper');
  const result = await cli(['convert', ckpt, '--config', config, '--out', out]);
  console.log(`    ${result.stdout.trim()}\n    ${result.stderr.trim()}`);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stderr, /note: took the EMA weights of a training checkpoint \(epoch 12, step 34000\)/);
  const loaded = await loadModelDir(out);
  assert.equal((loaded.schedulerConfig as Record<string, unknown>).beta_schedule, 'linear');
  const ema = parseSafetensors(loaded.weights);
  const raw = join(work, 'paper-raw');
  mkdirSync(raw); // an empty folder is fine
  assert.is((await cli(['convert', ckpt, '--config', config, '--out', raw, '--no-ema'])).code, 0);
  const rawWeights = parseSafetensors(bytesOf(join(raw, 'diffusion_pytorch_model.safetensors')));
  const differing = [...ema.tensors].filter(([name, entry]) =>
    compare(toFloat32(entry), toFloat32(rawWeights.tensors.get(name)!)).relL2 > 1e-3
  );
  console.log(`    --no-ema: ${differing.length} of ${ema.tensors.size} tensors differ from the EMA weights`);
  assert.ok(differing.length > ema.tensors.size / 2);

  const before = readdirSync(work).sort();
  const badYaml = join(work, 'bad.yml');
  writeFileSync(badYaml, 'model: [unclosed');
  const mistakes: [string[], RegExp][] = [
    [['convert', ckpt, '--out', join(work, 'x')], /needs --config/],
    [['convert', ckpt, '--config', config, '--out', out], /is a folder that is not empty/],
    [['convert', ckpt, '--config', badYaml, '--out', join(work, 'x')], /config\.yml is not valid YAML/],
    [['convert', `${DIR}/paper_bare/model.ckpt`, '--config', config, '--out', join(work, 'nowhere', 'x')], /does not exist/],
    [['convert', join(work, 'missing.pth'), '--config', config, '--out', join(work, 'x')], /does not exist/],
    [['convert', config, '--config', config, '--out', join(work, 'x')], /not a torch\.save file/],
    [['convert', `${DIR}/classcond`, '--config', config, '--out', join(work, 'x')], /--config is for a checkpoint file/],
    [['convert', out, '--out', join(work, 'x')], /already has diffusion_pytorch_model\.safetensors/],
    [['convert', '--out', join(work, 'x')], /convert needs SRC/],
    [['convert', ckpt, '--config', config], /convert needs --out DIR/],
  ];
  for (const [argv, pattern] of mistakes) {
    const r = await cli(argv);
    console.log(`    ${r.code}  ${r.stderr.split('\n')[0].replaceAll(work, '<tmp>').slice(0, 130)}`);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
  }
  rmSync(badYaml);
  assert.equal(readdirSync(work).sort(), before.filter((f) => f !== 'bad.yml').concat().sort(), 'nothing new, no temporary folder left');
  assert.equal(readdirSync(out).sort(), ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']);
  const help = await cli(['convert', '--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /^usage: sample convert SRC --out DIR/);
  assert.ok(help.stdout.includes('--no-ema') && help.stdout.includes('--config'));
});

files.run();

// ---------------------------------------------------------------------------------------------
// On the GPU: the converted models' eps, and .bin folders through the pipeline

const gpuRuns = suite('checkpoints on the GPU');

async function paperEps(label: string, checkpoint: string, reference: string): Promise<void> {
  const golden = readGolden('checkpoints/checkpoints.safetensors');
  const model = await convertPaperCheckpoint(bytesOf(`${DIR}/${checkpoint}`), configYaml(checkpoint.split('/')[0]));
  const gpu = await requestGpu();
  const t = goldenI32(golden, `${reference}.t`);
  const unet = await UNet.compile(gpu, readUNet({ config: model.config, weights: model.weights }), { batch: t.length });
  try {
    const eps = await unet.forward(goldenF32(golden, `${reference}.x`), t);
    console.log(`    ${label} (t = ${[...t].join(', ')}) on ${gpu.adapterName}:`);
    expectClose(`${reference}.eps`, eps, goldenF32(golden, `${reference}.eps`), TOLERANCE);
  } finally {
    unet.destroy();
    gpu.device.destroy();
  }
}

gpuRuns("paper_training/ckpt.pth (the EMA weights) matches the paper code's eps", async () => {
  await paperEps('training checkpoint, EMA', 'paper_training/ckpt.pth', 'paper_training');
});

gpuRuns("paper_bare/model.ckpt (zip) and model_legacy.ckpt (legacy) match the paper code's eps", async () => {
  await paperEps('bare state dict, zip', 'paper_bare/model.ckpt', 'paper_bare');
  await paperEps('bare state dict, legacy', 'paper_bare/model_legacy.ckpt', 'paper_bare');
});

gpuRuns('a .bin model folder (strided views, f64 storages, deflated or not) gives the eps of its safetensors', async () => {
  // The tiny model written by torch.save: every weight in a float64 storage (exact for float32
  // values), 2-D weights stored transposed and read through strides, as a state dict may hold them.
  const tiny = tinyModelFiles(3);
  const source = parseSafetensors(tiny.weights);
  const tensors: Record<string, TensorSpec> = {};
  const storages: Record<string, StorageSpec> = {};
  for (const [i, [name, entry]] of [...source.tensors].entries()) {
    const values = toFloat32(entry);
    const key = String(i);
    if (entry.shape.length === 2) {
      const [rows, cols] = entry.shape;
      const transposed = new Float64Array(values.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) transposed[c * rows + r] = values[r * cols + c];
      storages[key] = { dtype: 'F64', bytes: new Uint8Array(transposed.buffer) };
      tensors[name] = { storage: key, shape: [rows, cols], stride: [1, rows] };
    } else {
      storages[key] = { dtype: 'F64', bytes: new Uint8Array(Float64Array.from(values).buffer) };
      tensors[name] = { storage: key, shape: entry.shape };
    }
  }
  const variants: [string, Uint8Array][] = [
    ['zip', await torchSaveZip(tensors, storages)],
    ['deflated zip', await torchSaveZip(tensors, storages, { deflate: true })],
    ['legacy', torchSaveLegacy(tensors, storages)],
  ];
  const folders = mkdtempSync(join(tmpdir(), 'ddim-bin-folders-'));
  const gpu = await requestGpu();
  const x = Float32Array.from({ length: 2 * 3 * 8 * 8 }, (_, i) => Math.sin(i));
  const t = Int32Array.of(999, 10);
  const reference = await DdimPipeline.load(gpu, tiny, { batch: 2 });
  try {
    const expected = await reference.eps(x, t);
    for (const [label, bin] of variants) {
      const folder = join(folders, label.replace(' ', '-'));
      mkdirSync(join(folder, 'unet'), { recursive: true });
      writeFileSync(join(folder, 'unet', 'config.json'), JSON.stringify(tiny.config));
      writeFileSync(join(folder, 'unet', 'diffusion_pytorch_model.bin'), bin);
      const pipeline = await DdimPipeline.load(gpu, await loadModelDir(folder), { batch: 2 });
      try {
        const eps = await pipeline.eps(x, t);
        const differing = eps.filter((v, i) => !Object.is(v, expected[i])).length;
        console.log(
          `    ${
            label.padEnd(12)
          } (${bin.length} bytes, unet/ layout): ${differing} of ${eps.length} eps values differ from the safetensors model's`,
        );
        assert.is(differing, 0);
      } finally {
        pipeline.destroy();
      }
    }
  } finally {
    reference.destroy();
    gpu.device.destroy();
    rmSync(folders, { recursive: true, force: true });
  }
});

gpuRuns.run();
