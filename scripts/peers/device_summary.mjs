#!/usr/bin/env node
// The GPU kit's last step: every bench-*.json (the engine, with ORT-web beside it) and torch.json
// (PyTorch) in a folder, as one results.json and one table, results.md, naming the card; and, per
// model and batch benchmarked through more than one tiled kernel family, which was fastest.
//   node device_summary.mjs OUT_DIR
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir || !existsSync(dir)) {
  console.error('usage: device_summary.mjs OUT_DIR (holding bench-*.json, torch.json)');
  process.exit(2);
}
const read = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const benches = readdirSync(dir).filter((f) => /^bench-.*\.json$/.test(f)).sort().map((f) => ({ run: f.slice(6, -5), ...read(f) }));
const torch = existsSync(join(dir, 'torch.json')) ? read('torch.json') : null;
const ms = (v) => (v === null || v === undefined ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
const card = torch?.card ?? benches[0]?.adapter ?? 'unknown';

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
  "Forwards: median; the engine and ORT from input array to eps array, PyTorch on device tensors. (xN) = time / the engine's.",
  '',
  `| ${rows[0].join(' | ')} |`,
  `| ${rows[0].map(() => '---').join(' | ')} |`,
  ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`),
  '',
  ...tiledTable,
].join('\n');
writeFileSync(join(dir, 'results.md'), table);
writeFileSync(
  join(dir, 'results.json'),
  JSON.stringify({ schema: 'ddim-webgpu-device/1', card, benches, torch, tiledFamilies }, null, 2) + '\n',
);
console.log(table);
