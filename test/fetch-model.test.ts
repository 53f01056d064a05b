// scripts/fetch-model.ts against a local stand-in for the Hugging Face Hub: a node:http server on
// 127.0.0.1 serving tiny fake models from a temporary folder, in both diffusers layouts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { type CliOptions, fetchModel, FetchModelError, type FetchProgress, parseArgs } from '../scripts/fetch-model.ts';
import { readModelDir } from '../src/cli/model_dir.ts';
import { toFloat32 } from '../src/io/safetensors.ts';
import { parseWeightsFile } from '../src/io/weights_file.ts';
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

/** Fake repos, as files under <root>/<owner>/<name>/. */
const REPOS: Record<string, Record<string, Uint8Array>> = {
  'test/tiny-root': {
    'config.json': unetConfig,
    'diffusion_pytorch_model.safetensors': weights,
    'scheduler_config.json': schedulerConfig,
  },
  'test/tiny-pipeline': {
    'model_index.json': json({ _class_name: 'DDPMPipeline' }),
    'unet/config.json': unetConfig,
    'unet/diffusion_pytorch_model.safetensors': weights,
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

let tmp = '';
let server: http.Server;
let endpoint = '';
let droppedAfter = 0;

test.before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-model-test-'));
  const hubRoot = path.join(tmp, 'hub');
  for (const [id, files] of Object.entries(REPOS)) {
    for (const [name, bytes] of Object.entries(files)) {
      const file = path.join(hubRoot, id, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, bytes);
    }
  }
  server = http.createServer((req, res) => {
    // No keep-alive, so closing the server never waits on an idle client connection.
    res.setHeader('connection', 'close');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    if (!m || !REPOS[m[1]]) {
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

test('command line: defaults, HF_ENDPOINT, and usage errors', () => {
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
});

test.run();
