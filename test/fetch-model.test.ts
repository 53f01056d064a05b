// scripts/fetch-model.ts against a local stand-in for the Hugging Face Hub: a node:http server on
// 127.0.0.1 serving tiny fake models from a temporary folder: single UNets in both diffusers
// layouts, and Stable Diffusion and LDM pipelines made from ../shared/golden/sd.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { type CliOptions, fetchModel, FetchModelError, type FetchProgress, parseArgs } from '../scripts/fetch-model.ts';
import { readModelDir } from '../src/cli/model_dir.ts';
import { toFloat32 } from '../src/io/safetensors.ts';
import { parseWeightsFile, prepareWeights } from '../src/io/weights_file.ts';
import { type StorageSpec, type TensorSpec, torchSaveLegacy, torchSaveZip } from './util/torch_save.ts';

const test = suite('fetch-model');

/** A safetensors file written by hand: u64 LE header length, JSON header (space-padded), data. */
function tinySafetensors(floats: number): Uint8Array {
  const data = new Float32Array(floats).map((_, i) => Math.sin(i) * 3);
  const entries = {
    'conv_in.weight': { dtype: 'F32', shape: [floats - 4], data_offsets: [0, (floats - 4) * 4] },
    'conv_in.bias': { dtype: 'F32', shape: [4], data_offsets: [(floats - 4) * 4, floats * 4] },
    __metadata__: { format: 'pt' },
  };
  let header = JSON.stringify(entries);
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(header);
  const bytes = new Uint8Array(8 + headerBytes.length + data.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  bytes.set(headerBytes, 8);
  bytes.set(new Uint8Array(data.buffer), 8 + headerBytes.length);
  return bytes;
}

/** A safetensors file of one F16 tensor (0.5, -1, 2, 3.25), as a `.fp16.safetensors` variant holds them. */
function f16Safetensors(): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ 'conv_in.bias': { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }).padEnd(72),
  );
  const bytes = new Uint8Array(8 + header.length + 8);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  [0x3800, 0xbc00, 0x4000, 0x4280].forEach((half, i) => view.setUint16(8 + header.length + 2 * i, half, true));
  return bytes;
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value, null, 2));
const unetConfig = json({ _class_name: 'UNet2DModel', sample_size: 8, in_channels: 3, out_channels: 3, block_out_channels: [8, 16] });
const schedulerConfig = json({ _class_name: 'DDPMScheduler', num_train_timesteps: 1000, beta_schedule: 'linear' });
// Big enough (256 kB) that the dropped connection below cuts it after some bytes hit the disk.
const weights = tinySafetensors(65536);
// The same kind of state dict as torch.save writes it, in its zip and its legacy format.
const PICKLED_VALUES = [0.5, -1, 2, 3.25];
const pickledStorages: Record<string, StorageSpec> = {
  '0': { dtype: 'F32', bytes: new Uint8Array(Float32Array.from(PICKLED_VALUES).buffer) },
};
const pickledTensors: Record<string, TensorSpec> = { 'conv_in.bias': { storage: '0', shape: [4] } };
const pickleZip = await torchSaveZip(pickledTensors, pickledStorages);
const pickleLegacy = torchSaveLegacy(pickledTensors, pickledStorages);
const fp16Weights = f16Safetensors();
// What DDPMPipeline.save_pretrained writes: a single UNet, which lands flat like a bare model repo.
const ddpmIndex = json({ _class_name: 'DDPMPipeline', scheduler: ['diffusers', 'DDPMScheduler'], unet: ['diffusers', 'UNet2DModel'] });

/** Fake repos, as files under <root>/<owner>/<name>/. */
const REPOS: Record<string, Record<string, Uint8Array>> = {
  // As google/ddpm-cifar10-32 keeps it: the UNet's files at the root, beside a model_index.json.
  'test/tiny-root': {
    'model_index.json': ddpmIndex,
    'config.json': unetConfig,
    'diffusion_pytorch_model.safetensors': weights,
    'scheduler_config.json': schedulerConfig,
  },
  'test/tiny-pipeline': {
    'model_index.json': ddpmIndex,
    'unet/config.json': unetConfig,
    'unet/diffusion_pytorch_model.safetensors': weights,
    'unet/diffusion_pytorch_model.fp16.safetensors': fp16Weights,
    'scheduler/scheduler_config.json': schedulerConfig,
  },
  'test/no-scheduler': {
    'config.json': unetConfig,
    'diffusion_pytorch_model.safetensors': weights,
  },
  'test/no-weights': { 'config.json': unetConfig },
  'test/pickle-only': {
    'config.json': unetConfig,
    'diffusion_pytorch_model.bin': pickleZip,
    'scheduler_config.json': schedulerConfig,
  },
  'test/pickle-pipeline': {
    'model_index.json': json({ _class_name: 'DDPMPipeline' }),
    'unet/config.json': unetConfig,
    'unet/diffusion_pytorch_model.bin': pickleLegacy,
    'scheduler/scheduler_config.json': schedulerConfig,
  },
  'test/not-a-pickle': {
    'config.json': unetConfig,
    'diffusion_pytorch_model.bin': new TextEncoder().encode('<html>a login page, not weights</html>'),
  },
  // The server cuts this repo's weights off halfway (see below).
  'test/dropping': {
    'config.json': unetConfig,
    'diffusion_pytorch_model.safetensors': weights,
    'scheduler_config.json': schedulerConfig,
  },
};

const GOLDEN_SD = path.resolve('..', 'shared', 'golden', 'sd');

/** Copies a folder's files (fresh, writable: the shared ones are read-only). */
function copyTree(from: string, to: string) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) copyTree(path.join(from, entry.name), path.join(to, entry.name));
    else fs.writeFileSync(path.join(to, entry.name), fs.readFileSync(path.join(from, entry.name)));
  }
}

/** Every file under `dir`, '/'-separated, sorted. */
function listTree(dir: string, prefix = ''): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listTree(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]))
    .sort();
}

/**
 * Pipeline repos made from the golden tiny-sd and tiny-ldm folders:
 *   test/sd: tiny-sd as published, plus a safety_checker and a feature_extractor (never to be fetched), the vae's
 *     weights only as a .bin, and fp16 variants of the unet's and the text encoder's weights;
 *   test/sd-no-vae: its model_index.json names a vae whose folder is missing;
 *   test/ldm: tiny-ldm as is (unet + vqvae + scheduler);
 *   test/no-unet: a transformer pipeline, which the engine does not run.
 */
function makePipelineRepos(hubRoot: string) {
  const sd = path.join(hubRoot, 'test', 'sd');
  copyTree(path.join(GOLDEN_SD, 'tiny-sd'), sd);
  const index = JSON.parse(fs.readFileSync(path.join(sd, 'model_index.json'), 'utf8'));
  index.safety_checker = ['stable_diffusion', 'StableDiffusionSafetyChecker'];
  index.feature_extractor = ['transformers', 'CLIPImageProcessor'];
  const extra: Record<string, Uint8Array> = {
    'model_index.json': json(index),
    'safety_checker/config.json': json({ architectures: ['StableDiffusionSafetyChecker'] }),
    'safety_checker/model.safetensors': tinySafetensors(16),
    'feature_extractor/preprocessor_config.json': json({ crop_size: 224 }),
    'vae/diffusion_pytorch_model.bin': pickleZip,
    'unet/diffusion_pytorch_model.fp16.safetensors': fp16Weights,
    'text_encoder/model.fp16.safetensors': fp16Weights,
  };
  for (const [name, bytes] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(sd, name)), { recursive: true });
    fs.writeFileSync(path.join(sd, name), bytes);
  }
  fs.rmSync(path.join(sd, 'vae', 'diffusion_pytorch_model.safetensors'));

  const noVae = path.join(hubRoot, 'test', 'sd-no-vae');
  copyTree(path.join(GOLDEN_SD, 'tiny-sd'), noVae);
  fs.rmSync(path.join(noVae, 'vae'), { recursive: true });

  copyTree(path.join(GOLDEN_SD, 'tiny-ldm'), path.join(hubRoot, 'test', 'ldm'));

  const noUnet = path.join(hubRoot, 'test', 'no-unet');
  fs.mkdirSync(noUnet, { recursive: true });
  fs.writeFileSync(
    path.join(noUnet, 'model_index.json'),
    json({ _class_name: 'PixArtAlphaPipeline', transformer: ['diffusers', 'Transformer2DModel'], vae: ['diffusers', 'AutoencoderKL'] }),
  );
  return ['test/sd', 'test/sd-no-vae', 'test/ldm', 'test/no-unet'];
}

let tmp = '';
let hubRoot = '';
let server: http.Server;
let endpoint = '';
let droppedAfter = 0;
/** Every request the server answered, as `METHOD repo/path`. */
const requests: string[] = [];

test.before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-model-test-'));
  hubRoot = path.join(tmp, 'hub');
  for (const [id, files] of Object.entries(REPOS)) {
    for (const [name, bytes] of Object.entries(files)) {
      const file = path.join(hubRoot, id, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, bytes);
    }
  }
  const repos = new Set([...Object.keys(REPOS), ...makePipelineRepos(hubRoot)]);
  server = http.createServer((req, res) => {
    // No keep-alive, so closing the server never waits on an idle client connection.
    res.setHeader('connection', 'close');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    if (m) requests.push(`${req.method} ${m[1]}/${m[3]}`);
    if (!m || !repos.has(m[1])) {
      // The Hub answers 401 for a repo it does not know (it could be private).
      res.writeHead(401, { 'x-error-code': 'RepositoryNotFound' }).end();
      return;
    }
    if (decodeURIComponent(m[2]) !== 'main') {
      res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
      return;
    }
    const file = path.join(hubRoot, m[1], m[3]);
    if (!fs.existsSync(file)) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    if (req.method === 'HEAD') {
      res.end();
    } else if (m[1] === 'test/dropping' && m[3].endsWith('.safetensors')) {
      droppedAfter = body.length >> 1;
      res.write(body.subarray(0, droppedAfter), () => setTimeout(() => res.destroy(), 50));
    } else {
      res.end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

test.after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

function listDir(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

async function expectFailure(promise: Promise<unknown>): Promise<FetchModelError> {
  try {
    await promise;
  } catch (e) {
    assert.instance(e, FetchModelError, `expected a FetchModelError, got ${e}`);
    return e as FetchModelError;
  }
  assert.unreachable('the fetch should have failed');
  throw new Error('unreachable');
}

function sameBytes(file: string, expected: Uint8Array) {
  const actual = new Uint8Array(fs.readFileSync(file));
  assert.is(actual.length, expected.length, `${file} length`);
  assert.ok(actual.every((b, i) => b === expected[i]), `${file} differs from the served bytes`);
}

test('root layout: all three files arrive byte-identical, with progress', async () => {
  const out = path.join(tmp, 'out', 'root');
  const progress: FetchProgress[] = [];
  const model = await fetchModel({ id: 'test/tiny-root', out, endpoint, onProgress: (p) => progress.push(p) });
  assert.is(model.layout, 'root');
  assert.is(model.schedulerMissing, false);
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']);
  sameBytes(path.join(out, 'config.json'), unetConfig);
  sameBytes(path.join(out, 'diffusion_pytorch_model.safetensors'), weights);
  sameBytes(path.join(out, 'scheduler_config.json'), schedulerConfig);
  const last = progress.filter((p) => p.file === 'diffusion_pytorch_model.safetensors').at(-1)!;
  assert.equal([last.received, last.total, last.done], [weights.length, weights.length, true]);
});

test('pipeline layout (unet/ + scheduler/) lands flat in the output folder', async () => {
  const out = path.join(tmp, 'out', 'pipeline');
  const model = await fetchModel({ id: 'test/tiny-pipeline', out, endpoint });
  assert.is(model.layout, 'pipeline');
  assert.equal(model.files.map((f) => f.source), [
    'unet/config.json',
    'unet/diffusion_pytorch_model.safetensors',
    'scheduler/scheduler_config.json',
  ]);
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']);
  sameBytes(path.join(out, 'diffusion_pytorch_model.safetensors'), weights);
  sameBytes(path.join(out, 'scheduler_config.json'), schedulerConfig);
});

test('a missing scheduler config is fine and is said', async () => {
  const out = path.join(tmp, 'out', 'no-scheduler');
  const notes: string[] = [];
  const model = await fetchModel({ id: 'test/no-scheduler', out, endpoint, onNote: (n) => notes.push(n) });
  assert.is(model.schedulerMissing, true);
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.safetensors']);
  assert.ok(notes.some((n) => n.includes('no scheduler config')), notes.join('\n'));
});

test('404: names the model, the file and the revision, and leaves nothing', async () => {
  const out = path.join(tmp, 'out', 'no-weights', 'nested');
  const e = await expectFailure(fetchModel({ id: 'test/no-weights', out, endpoint }));
  assert.is(e.kind, 'not-found');
  assert.is(
    e.message.split(' (')[0],
    'model test/no-weights has no file diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin at revision main',
  );
  assert.not.ok(fs.existsSync(path.join(tmp, 'out', 'no-weights')), 'the folders it made are removed');
});

test('an unknown model or revision is a clear error', async () => {
  const out = path.join(tmp, 'out', 'unknown');
  const repo = await expectFailure(fetchModel({ id: 'test/does-not-exist', out, endpoint }));
  assert.is(repo.kind, 'not-found');
  assert.match(repo.message, 'model test/does-not-exist was not found');
  const rev = await expectFailure(fetchModel({ id: 'test/tiny-root', out, endpoint, revision: 'v9' }));
  assert.is(rev.message, 'model test/tiny-root has no revision v9');
  assert.not.ok(fs.existsSync(out));
});

/** The fetched folder as the engine's model-folder reader loads it: the pickled tensor's values. */
async function loadedPickle(out: string): Promise<number[]> {
  const { paths, files } = await readModelDir(out);
  assert.is(path.basename(paths.weights), 'diffusion_pytorch_model.bin');
  return [...toFloat32(parseWeightsFile(files.weights).tensors.get('conv_in.bias')!)];
}

test('weights only as a pickle (.bin, torch zip): fetched as is, and the engine reads the folder', async () => {
  const out = path.join(tmp, 'out', 'pickle');
  const notes: string[] = [];
  const model = await fetchModel({ id: 'test/pickle-only', out, endpoint, onNote: (n) => notes.push(n) });
  assert.is(model.layout, 'root');
  assert.is(model.weights, 'pickle');
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.bin', 'scheduler_config.json']);
  sameBytes(path.join(out, 'diffusion_pytorch_model.bin'), pickleZip);
  assert.ok(notes.some((n) => n.includes('PyTorch pickle diffusion_pytorch_model.bin')), notes.join('\n'));
  assert.equal(await loadedPickle(out), PICKLED_VALUES);
});

test('a pipeline repo with unet/diffusion_pytorch_model.bin (legacy torch.save) lands flat', async () => {
  const out = path.join(tmp, 'out', 'pickle-pipeline');
  const model = await fetchModel({ id: 'test/pickle-pipeline', out, endpoint });
  assert.is(model.layout, 'pipeline');
  assert.equal(model.files.map((f) => f.source), [
    'unet/config.json',
    'unet/diffusion_pytorch_model.bin',
    'scheduler/scheduler_config.json',
  ]);
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.bin', 'scheduler_config.json']);
  assert.equal(await loadedPickle(out), PICKLED_VALUES);
});

test('a .bin that is not a torch.save file is refused and leaves nothing', async () => {
  const out = path.join(tmp, 'out', 'not-a-pickle');
  const e = await expectFailure(fetchModel({ id: 'test/not-a-pickle', out, endpoint }));
  assert.is(e.kind, 'invalid');
  assert.match(e.message, 'diffusion_pytorch_model.bin is not a PyTorch (torch.save) file');
  assert.not.ok(fs.existsSync(out));
});

test('a .bin fetch into a folder holding a safetensors file (which the engine would read) is refused', async () => {
  const out = path.join(tmp, 'out', 'stale');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'diffusion_pytorch_model.safetensors'), weights);
  const e = await expectFailure(fetchModel({ id: 'test/pickle-only', out, endpoint }));
  assert.is(e.kind, 'conflict');
  assert.match(e.message, `${path.join(out, 'diffusion_pytorch_model.safetensors')} is already there`);
  assert.equal(listDir(out), ['diffusion_pytorch_model.safetensors'], 'nothing fetched, nothing removed');
});

test('a connection dropped mid-body leaves no partial file and keeps what was there', async () => {
  const out = path.join(tmp, 'out', 'dropping');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
  let received = 0;
  const e = await expectFailure(
    fetchModel({ id: 'test/dropping', out, endpoint, onProgress: (p) => (received = Math.max(received, p.received)) }),
  );
  assert.is(e.kind, 'network', e.message);
  assert.ok(droppedAfter > 0 && received > 0, `the body was cut after some bytes arrived (${received} of ${droppedAfter} sent)`);
  assert.not.match(e.message, '\n');
  assert.equal(listDir(out), ['keep.txt']);
});

test('an endpoint nobody listens on is a one-line network error', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const out = path.join(tmp, 'out', 'refused');
  const e = await expectFailure(fetchModel({ id: 'test/tiny-root', out, endpoint: `http://127.0.0.1:${port}` }));
  assert.is(e.kind, 'network');
  assert.match(e.message, `127.0.0.1:${port}`);
  assert.not.match(e.message, '\n');
  assert.not.ok(fs.existsSync(out));
});

/** The requests this fetch made of one repo, as `METHOD path`. */
function requestsOf(id: string, since: number): string[] {
  return requests.slice(since).filter((r) => r.split(' ')[1].startsWith(`${id}/`)).map((r) => r.replace(`${id}/`, ''));
}

/** The values of the fake pickle's conv_in.bias, read as the engine reads a weights file. */
async function pickledValues(file: string): Promise<number[]> {
  const bytes = await prepareWeights(new Uint8Array(fs.readFileSync(file)));
  return [...toFloat32(parseWeightsFile(bytes).tensors.get('conv_in.bias')!)];
}

test('a DDPMPipeline with --variant fp16 still lands flat, its fp16 weights under the name the engine reads', async () => {
  const out = path.join(tmp, 'out', 'pipeline-fp16');
  const notes: string[] = [];
  const model = await fetchModel({ id: 'test/tiny-pipeline', out, endpoint, variant: 'fp16', onNote: (n) => notes.push(n) });
  assert.is(model.layout, 'pipeline');
  assert.is(model.files[1].source, 'unet/diffusion_pytorch_model.fp16.safetensors');
  assert.equal(listDir(out), ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']);
  sameBytes(path.join(out, 'diffusion_pytorch_model.safetensors'), fp16Weights);
  assert.equal(notes, []);
});

test('Stable Diffusion pipeline: the hub layout of the components the engine runs, nothing else', async () => {
  const out = path.join(tmp, 'out', 'sd');
  const notes: string[] = [];
  const done: string[] = [];
  const since = requests.length;
  const model = await fetchModel({
    id: 'test/sd',
    out,
    endpoint,
    onNote: (n) => notes.push(n),
    onProgress: (p) => p.done && done.push(p.file),
  });
  const expected = [
    'model_index.json',
    'scheduler/scheduler_config.json',
    'text_encoder/config.json',
    'text_encoder/model.safetensors',
    'tokenizer/merges.txt',
    'tokenizer/special_tokens_map.json',
    'tokenizer/tokenizer_config.json',
    'tokenizer/vocab.json',
    'unet/config.json',
    'unet/diffusion_pytorch_model.safetensors',
    'vae/config.json',
    'vae/diffusion_pytorch_model.bin',
  ];
  assert.equal(listTree(out), expected);
  for (const file of expected) sameBytes(path.join(out, file), fs.readFileSync(path.join(hubRoot, 'test', 'sd', file)));
  assert.equal([...done].sort(), expected, 'every kept file reported done once');
  assert.is(model.layout, 'components');
  assert.is(model.weights, 'safetensors');
  assert.is(model.schedulerMissing, false);
  assert.equal(model.files.map((f) => f.source).sort(), expected);
  assert.equal(
    model.components!.map((c) => [c.name, c.className, c.weights?.source ?? null, c.weights?.kind ?? null]),
    [
      ['unet', 'UNet2DConditionModel', 'unet/diffusion_pytorch_model.safetensors', 'safetensors'],
      ['vae', 'AutoencoderKL', 'vae/diffusion_pytorch_model.bin', 'pickle'],
      ['text_encoder', 'CLIPTextModel', 'text_encoder/model.safetensors', 'safetensors'],
      ['tokenizer', 'CLIPTokenizer', null, null],
      ['scheduler', 'DDIMScheduler', null, null],
    ],
  );
  assert.equal([...model.skipped!].sort(), ['feature_extractor', 'safety_checker']);
  const skipNotes = notes.filter((n) => n.startsWith('skipped'));
  assert.is(skipNotes.length, 1, notes.join('\n'));
  assert.match(skipNotes[0], 'safety_checker (stable_diffusion StableDiffusionSafetyChecker)');
  assert.match(skipNotes[0], 'feature_extractor (transformers CLIPImageProcessor)');
  assert.ok(notes.some((n) => n.includes('the vae of test/sd has no safetensors weights')), notes.join('\n'));
  const asked = requestsOf('test/sd', since);
  assert.equal(asked.filter((r) => /safety_checker|feature_extractor/.test(r)), [], 'the skipped components are never asked for');
  assert.equal(asked.filter((r) => r.includes('fp16')), [], 'no variant is asked for without --variant');
  assert.equal(await pickledValues(path.join(out, 'vae', 'diffusion_pytorch_model.bin')), PICKLED_VALUES);
});

test('--variant fp16: the .fp16. weights where the repo has them, else the plain ones, said in a note', async () => {
  const out = path.join(tmp, 'out', 'sd-fp16');
  const notes: string[] = [];
  const since = requests.length;
  const model = await fetchModel({ id: 'test/sd', out, endpoint, variant: 'fp16', onNote: (n) => notes.push(n) });
  const weightsFiles = listTree(out).filter((f) => /\.(safetensors|bin)$/.test(f));
  assert.equal(weightsFiles, [
    'text_encoder/model.fp16.safetensors',
    'unet/diffusion_pytorch_model.fp16.safetensors',
    'vae/diffusion_pytorch_model.bin',
  ]);
  sameBytes(path.join(out, 'unet', 'diffusion_pytorch_model.fp16.safetensors'), fp16Weights);
  sameBytes(path.join(out, 'text_encoder', 'model.fp16.safetensors'), fp16Weights);
  assert.equal(model.components!.filter((c) => c.weights).map((c) => [c.name, c.weights!.variant]), [
    ['unet', true],
    ['vae', false],
    ['text_encoder', true],
  ]);
  assert.ok(
    notes.includes(
      'the vae of test/sd has no fp16 variant (vae/diffusion_pytorch_model.fp16.safetensors or vae/diffusion_pytorch_model.fp16.bin): ' +
        'fetched vae/diffusion_pytorch_model.bin instead',
    ),
    notes.join('\n'),
  );
  const asked = requestsOf('test/sd', since);
  assert.not.ok(asked.includes('GET unet/diffusion_pytorch_model.safetensors'), 'the plain unet weights are not downloaded');
  assert.not.ok(asked.includes('GET text_encoder/model.safetensors'), 'the plain text encoder weights are not downloaded');
});

test('LDM pipeline (unet + vqvae + scheduler) keeps the hub layout, which the engine reads', async () => {
  const out = path.join(tmp, 'out', 'ldm');
  const model = await fetchModel({ id: 'test/ldm', out, endpoint });
  const expected = [
    'model_index.json',
    'scheduler/scheduler_config.json',
    'unet/config.json',
    'unet/diffusion_pytorch_model.safetensors',
    'vqvae/config.json',
    'vqvae/diffusion_pytorch_model.safetensors',
  ];
  assert.equal(listTree(out), expected);
  for (const file of expected) sameBytes(path.join(out, file), fs.readFileSync(path.join(GOLDEN_SD, 'tiny-ldm', file)));
  assert.equal(model.skipped, []);
  const { paths } = await readModelDir(out);
  assert.is(paths.layout, 'pipeline');
});

test('model_index.json naming a component whose folder is missing: a clear error before any weights, nothing left', async () => {
  const out = path.join(tmp, 'out', 'sd-no-vae');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
  const since = requests.length;
  const e = await expectFailure(fetchModel({ id: 'test/sd-no-vae', out, endpoint }));
  assert.is(e.kind, 'not-found');
  assert.is(
    e.message,
    `model test/sd-no-vae lists vae (diffusers AutoencoderKL) in model_index.json, but has no vae/config.json at revision main (${endpoint})`,
  );
  assert.equal(requestsOf('test/sd-no-vae', since).filter((r) => /\.(safetensors|bin)$/.test(r)), [], 'no weights were asked for');
  assert.equal(listTree(out), ['keep.txt'], 'no file nor folder of the fetch remains');
});

test('a pipeline without a unet is refused, and leaves nothing', async () => {
  const out = path.join(tmp, 'out', 'no-unet');
  const e = await expectFailure(fetchModel({ id: 'test/no-unet', out, endpoint }));
  assert.is(e.kind, 'unsupported');
  assert.is(
    e.message,
    'model test/no-unet is a pipeline without a unet (its model_index.json lists transformer (diffusers Transformer2DModel), ' +
      'vae (diffusers AutoencoderKL)): the engine runs UNet pipelines only',
  );
  assert.not.ok(fs.existsSync(out));
});

test('a component .bin fetch into a folder holding that component as safetensors is refused, and nothing is fetched', async () => {
  const out = path.join(tmp, 'out', 'sd-stale');
  fs.mkdirSync(path.join(out, 'vae'), { recursive: true });
  fs.writeFileSync(path.join(out, 'vae', 'diffusion_pytorch_model.safetensors'), weights);
  const e = await expectFailure(fetchModel({ id: 'test/sd', out, endpoint }));
  assert.is(e.kind, 'conflict');
  assert.match(e.message, `has its weights as vae/diffusion_pytorch_model.bin only, but ${path.join(out, 'vae')}`);
  assert.equal(listTree(out), ['vae/diffusion_pytorch_model.safetensors']);
});

test('command line: defaults, HF_ENDPOINT, --variant, and usage errors', () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(parseArgs(['google/ddpm-cifar10-32'], env({})), {
    id: 'google/ddpm-cifar10-32',
    out: path.join('weights', 'ddpm-cifar10-32'),
    endpoint: 'https://huggingface.co',
    revision: 'main',
  });
  const custom = parseArgs(['a/b', '--out=x', '--revision', 'refs/pr/3'], env({ HF_ENDPOINT: 'http://mirror' }));
  assert.equal(custom, { id: 'a/b', out: 'x', endpoint: 'http://mirror', revision: 'refs/pr/3' });
  const flagWins = parseArgs(['a/b', '--endpoint', 'http://e'], env({ HF_ENDPOINT: 'http://mirror' })) as CliOptions;
  assert.is(flagWins.endpoint, 'http://e');
  assert.is(parseArgs(['--help'], env({})), 'help');
  assert.throws(() => parseArgs([], env({})), /usage/);
  assert.throws(() => parseArgs(['a/b', '--bogus'], env({})), /unknown option --bogus/);
  assert.throws(() => parseArgs(['a/b', '--out'], env({})), /--out needs a value/);
  assert.is((parseArgs(['a/b', '--variant', 'fp16'], env({})) as CliOptions).variant, 'fp16');
  assert.throws(() => parseArgs(['a/b', '--variant=../x'], env({})), /--variant \.\.\/x is not a name like fp16/);
});

test.run();
