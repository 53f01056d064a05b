#!/usr/bin/env node
// The GPU kit's last step: every bench-*.json (the engine, with ORT-web beside it) and torch.json
// (PyTorch) in a folder, as one results.json and one table, results.md, naming the card; and, per
// model and batch benchmarked through more than one tiled kernel family, which was fastest. The SD
// kit's bench-sd15-*.json (text-to-image) and torch-sd15.json get a table of their own.
//   node device_summary.mjs OUT_DIR
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir || !existsSync(dir)) {
  console.error('usage: device_summary.mjs OUT_DIR (holding bench-*.json, torch.json)');
  process.exit(2);
}
const read = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const TEXT_TO_IMAGE = 'ddim-webgpu-bench-text-to-image/1';
const allBenches = readdirSync(dir).filter((f) => /^bench-.*\.json$/.test(f)).sort().map((f) => ({ run: f.slice(6, -5), ...read(f) }));
const benches = allBenches.filter((b) => b.schema !== TEXT_TO_IMAGE);
const sdBenches = allBenches.filter((b) => b.schema === TEXT_TO_IMAGE);
const torch = existsSync(join(dir, 'torch.json')) ? read('torch.json') : null;
const torchSd = existsSync(join(dir, 'torch-sd15.json')) ? read('torch-sd15.json') : null;
const ms = (v) => (v === null || v === undefined ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
const card = torch?.card ?? torchSd?.card ?? allBenches[0]?.adapter ?? 'unknown';
const mib = (bytes) => (bytes === undefined || bytes === null ? '-' : `${(bytes / 2 ** 20).toFixed(0)} MiB`);

// Stable Diffusion: the UNet forward at batch 2 (one image under guidance), the whole
// text-to-image (engine: two prompts encoded, the steps, the VAE compiled and run; PyTorch: the
// steps and the VAE, random prompt embeddings), the VAE decode, and memory.
const sdRows = [['layout', 'image', 'runtime', 'UNet forward (b2)', 'x engine f16', 'text-to-image', 'steps', 'VAE decode', 'GPU memory']];
const engineF16 = sdBenches.find((b) => b.precision === 'f16')?.forward.wallMs;
const times = (v) => (engineF16 && v ? ` (x${(v / engineF16).toFixed(2)})` : '');
for (const b of sdBenches) {
  sdRows.push([
    b.model.name.replace(' layout', ''),
    `${b.model.width}x${b.model.height}`,
    `this engine, ${b.precision}`,
    ms(b.forward.wallMs),
    times(b.forward.wallMs).trim() || '-',
    ms(b.components.sampleMs),
    String(b.components.steps),
    ms(b.components.vaeDecodeMs),
    `peak ${mib(b.memory?.peakBytes)}`,
  ]);
}
for (const r of torchSd?.results ?? []) {
  const runtime = `PyTorch ${torchSd.torch} ${r.dtype}, ${r.attention ?? r.mode}`;
  if (r.error) sdRows.push([r.layout, `${r.width}x${r.height}`, runtime, 'not run', '', '', '', '', r.error.slice(0, 80)]);
  else {
    sdRows.push([
      r.layout,
      `${r.width}x${r.height}`,
      runtime,
      ms(r.forwardMs),
      times(r.forwardMs).trim() || '-',
      ms(r.sampleMs),
      String(r.steps),
      `${ms(r.vaeDecodeMs)} (${r.vaeDtype})`,
      `peak ${mib(r.peakMemoryBytes)}`,
    ]);
  }
}
const sdTable = sdRows.length === 1 ? [] : [
  `## Stable Diffusion on ${card}: this engine and PyTorch`,
  '',
  'Random weights. UNet forward: batch 2 (one image under guidance), median. Text-to-image: the engine encodes two prompts,',
  'runs the guided steps and compiles and runs the VAE; PyTorch runs the same steps and VAE on random prompt embeddings (CLIP needs',
  "transformers). (xN) = time / the engine's f16 forward.",
  '',
  `| ${sdRows[0].join(' | ')} |`,
  `| ${sdRows[0].map(() => '---').join(' | ')} |`,
  ...sdRows.slice(1).map((r) => `| ${r.join(' | ')} |`),
  '',
];

// Where an SD forward's time goes, by op kind (the bench profiles one forward on a GPU).
const sdProfiles = sdBenches.filter((b) => b.profile).flatMap((b) => [
  `### The UNet forward by op kind: ${b.model.name.replace(' layout', '')}, ${b.model.width}x${b.model.height}, ${b.precision}`,
  '',
  `One batch-2 forward node by node (${b.profile.timing}), ${ms(b.profile.nodeSumMs)} in all; the ten largest kinds.`,
  '',
  '| kind | dispatches | time | share | GFLOP/s |',
  '| --- | --- | --- | --- | --- |',
  ...b.profile.kinds.slice(0, 10).map((k) =>
    `| ${k.kind} | ${k.dispatches} | ${ms(k.totalMs)} | ${(100 * k.share).toFixed(1)}% | ${k.gflops.toFixed(1)} |`
  ),
  '',
]);

const rows = [['model', 'batch', 'runtime', 'forward', 'DDIM', 'steps', 'adapter / card']];
for (const b of benches) {
  const name = b.model.name.replace(' layout', '');
  const e = b.peers?.engine;
  rows.push([
    name,
    String(b.model.batch),
    `this engine [${b.kernels}${b.precision && b.precision !== 'f32' ? `, ${b.precision}` : ''}]`,
    ms(e?.forwardMs ?? b.forward.wallMs),
    ms(b.ddim.wallMs),
    String(b.ddim.forwards),
    b.adapter,
  ]);
  for (const [peer, p] of Object.entries(b.peers?.peers ?? {})) {
    if (p.error) rows.push([name, String(b.model.batch), peer, 'not run', '', '', p.error.slice(0, 80)]);
    else {
      rows.push([
        name,
        String(b.model.batch),
        peer,
        `${ms(p.forwardMs)} (x${p.timesEngine.forward.toFixed(2)})`,
        `${ms(p.ddim.wallMs)}${p.timesEngine.ddim ? ` (x${p.timesEngine.ddim.toFixed(2)})` : ''}`,
        String(p.ddim.forwards),
        p.adapter,
      ]);
    }
  }
}
for (const r of torch?.results ?? []) {
  const mode = `PyTorch ${torch.torch} ${r.mode}`;
  if (r.error) {
    rows.push([r.layout, '1', mode, 'not run', '', '', r.error.slice(0, 80)]);
    continue;
  }
  rows.push([r.layout, '1', mode, ms(r.b1ForwardMs), ms(r.ddimMs), String(r.ddimSteps), torch.card]);
  rows.push([r.layout, String(r.batch), mode, ms(r[`b${r.batch}ForwardMs`]), '', '', torch.card]);
}
// The tiled families (tile shapes) side by side: per model, batch and precision, each family's
// median forward (its fastest run, where it ran more than once), fastest first.
const tiledGroups = new Map();
for (const b of benches) {
  if (!String(b.kernels).startsWith('tiled')) continue;
  const key = `${b.model.name}|${b.model.batch}|${b.precision ?? 'f32'}`;
  const group = tiledGroups.get(key) ?? { model: b.model.name, batch: b.model.batch, precision: b.precision ?? 'f32', forwardMs: {} };
  const previous = group.forwardMs[b.kernels];
  group.forwardMs[b.kernels] = previous === undefined ? b.forward.wallMs : Math.min(previous, b.forward.wallMs);
  tiledGroups.set(key, group);
}
const tiledFamilies = [...tiledGroups.values()].filter((g) => Object.keys(g.forwardMs).length > 1).map((g) => {
  const ranked = Object.entries(g.forwardMs).sort((a, b) => a[1] - b[1]);
  const [fastest, best] = ranked[0];
  return {
    ...g,
    fastest,
    // How much faster the fastest is than the next, and than 'tiled' (today's default).
    overNext: ranked[1][1] / best,
    overTiled: g.forwardMs.tiled === undefined ? null : g.forwardMs.tiled / best,
    ranked: ranked.map(([family, ms]) => ({ family, forwardMs: ms, timesFastest: ms / best })),
  };
});
const tiledTable = tiledFamilies.length === 0 ? [] : [
  '## Tiled kernel families (tile shapes), fastest first',
  '',
  'Median forward of each family on this card; (xN) = time / the fastest. The default on GPUs is `tiled` (src/gpu/adapter.ts).',
  '',
  '| model | batch | precision | fastest | vs next | vs tiled | all |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...tiledFamilies.map((t) =>
    `| ${t.model} | ${t.batch} | ${t.precision} | ${t.fastest} | x${t.overNext.toFixed(2)} | ${
      t.overTiled === null ? '-' : `x${t.overTiled.toFixed(2)}`
    } | ${t.ranked.map((r) => `${r.family} ${ms(r.forwardMs)} (x${r.timesFastest.toFixed(2)})`).join(', ')} |`
  ),
  '',
];
const table = [
  `# ${card}: this engine, onnxruntime-web (WebGPU EP, same adapter) and PyTorch`,
  '',
  ...sdTable,
  ...sdProfiles,
  ...(rows.length === 1 ? [] : [
    "Forwards: median; the engine and ORT from input array to eps array, PyTorch on device tensors. (xN) = time / the engine's.",
    '',
    `| ${rows[0].join(' | ')} |`,
    `| ${rows[0].map(() => '---').join(' | ')} |`,
    ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`),
    '',
  ]),
  ...tiledTable,
].join('\n');
writeFileSync(join(dir, 'results.md'), table);
writeFileSync(
  join(dir, 'results.json'),
  JSON.stringify({ schema: 'ddim-webgpu-device/1', card, benches, torch, tiledFamilies, sdBenches, torchSd }, null, 2) + '\n',
);
console.log(table);
