/**
 * The text-to-image benchmark (`npm run bench -- --layout sd15`) on the tiny SD folder: the JSON's
 * components, memory and forward figures, and the node-by-node profile of one UNet forward that the
 * GPU kit records (taken on a GPU by default; asked for here on the software adapter).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { isSoftwareAdapter } from '../src/gpu/adapter.ts';
import { formatTextToImageBenchmark, runTextToImageBenchmark, type TextToImageBenchOptions } from '../src/profile/bench_text_to_image.ts';
import { gpu } from './util/shared_gpu.ts';

const test = suite('text-to-image bench');
const TINY_SD = '../shared/golden/sd/tiny-sd';

/** The bench on the tiny SD folder at 64x64, one run of each part. */
async function bench(options: Pick<TextToImageBenchOptions, 'profile' | 'onProfile'>) {
  return runTextToImageBenchmark({
    modelName: 'tiny sd',
    modelSource: TINY_SD,
    files: await loadModelDir(TINY_SD),
    gpu: await gpu(),
    height: 64,
    width: 64,
    repeats: 1,
    warmup: 0,
    steps: 1,
    ...options,
  });
}

test('the tiny SD folder: each component timed, GPU memory, and one forward node by node by op kind', async () => {
  let traced = 0;
  const r = await bench({ profile: true, onProfile: (profile) => (traced = profile.kinds.length) });
  const text = formatTextToImageBenchmark(r);
  console.log(text.split('\n').map((line) => `    ${line}`).join('\n'));
  for (const [name, ms] of Object.entries(r.components)) assert.ok(Number.isFinite(ms) && ms >= 0, `${name} ${ms}`);
  assert.is(r.components.unetForwardMs, r.forward.wallMs);
  assert.ok(r.forward.gflopPerForward > 0);
  assert.ok(r.memory.peakBytes > 0 && r.memory.largestBindingBytes > 0 && r.memory.largestBindingBytes <= r.memory.peakBytes);
  assert.ok(r.profile, 'profiled');
  const kinds = new Set(r.profile.kinds.map((k) => k.kind));
  for (const kind of ['token_linear', 'token_attention', 'conv3x3']) assert.ok(kinds.has(kind), `${kind} in ${[...kinds]}`);
  assert.ok(r.profile.nodeSumMs > 0 && r.profile.stepTotalMs > 0);
  assert.is(traced, r.profile.kinds.length, 'the profile handed on, for a trace');
  assert.match(text, /unet forward node by node:\n/);
});

test('without `profile`: a GPU profiles the forward, a software adapter does not and says how to ask', async () => {
  const software = isSoftwareAdapter((await gpu()).adapter);
  const r = await bench({});
  if (software) {
    assert.is(r.profile, null);
    assert.match(formatTextToImageBenchmark(r), /not profiled \(software adapter; --trace FILE profiles it\)/);
  } else {
    assert.ok(r.profile, 'profiled by default on a GPU');
  }
});

test.run();
