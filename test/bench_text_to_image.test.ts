/**
 * The text-to-image benchmark (`npm run bench -- --layout sd15`) on the tiny SD folder: the JSON's
 * components, memory and forward figures, and the node-by-node profile of one UNet forward that the
 * GPU kit records (taken on a GPU by default; asked for here on the software adapter).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { formatTextToImageBenchmark, runTextToImageBenchmark } from '../src/profile/bench_text_to_image.ts';
import { gpu } from './util/shared_gpu.ts';

const test = suite('text-to-image bench');
const TINY_SD = '../shared/golden/sd/tiny-sd';

test('the tiny SD folder: each component timed, GPU memory, and one forward node by node by op kind', async () => {
  let traced = 0;
  const r = await runTextToImageBenchmark({
    modelName: 'tiny sd',
    modelSource: TINY_SD,
    files: await loadModelDir(TINY_SD),
    gpu: await gpu(),
    height: 64,
    width: 64,
    repeats: 1,
    warmup: 0,
    steps: 1,
    profile: true,
    onProfile: (profile) => (traced = profile.kinds.length),
  });
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

test('without `profile`, a software adapter is not profiled, and the summary says how to ask', async () => {
  const g = await gpu();
  if (!/llvmpipe|lavapipe|swiftshader/i.test(g.adapterName)) return; // a GPU profiles by default
  const r = await runTextToImageBenchmark({
    modelName: 'tiny sd',
    modelSource: TINY_SD,
    files: await loadModelDir(TINY_SD),
    gpu: g,
    height: 64,
    width: 64,
    repeats: 1,
    warmup: 0,
    steps: 1,
  });
  assert.is(r.profile, null);
  assert.match(formatTextToImageBenchmark(r), /not profiled \(software adapter; --trace FILE profiles it\)/);
});

test.run();
