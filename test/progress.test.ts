/**
 * The command line's progress without a terminal (CI, a pipe): plain lines from a timer, with the
 * steps done, images/s and the ETA, and no escape codes; on a terminal, the bar redrawn in place.
 * No GPU: the sampler's onStep calls are made by hand; a busy loop stands in for Deno's blocking WebGPU.
 */
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { barText, type CliIo, CompileProgressLine, plainText, ProgressBar } from '../src/cli/progress.ts';
import type { StepProgress } from '../src/sampler/ddim.ts';

const progress = suite('cli progress');

function captured(isTTY: boolean, plainProgressMs?: number, slowCompileMs?: number): { io: CliIo; text: () => string } {
  let text = '';
  return { io: { stdout: () => {}, stderr: (t) => void (text += t), isTTY, plainProgressMs, slowCompileMs }, text: () => text };
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** What the sampler reports after `step` of `total` for the batch starting at `firstImage`. */
function at(step: number, total: number, firstImage: number): StepProgress {
  return { step, total, t: 1000 - (1000 / total) * step, firstImage };
}

progress('without a terminal: a plain line per interval, with steps, batch, images/s and ETA', async () => {
  const { io, text } = captured(false, 30);
  const bar = new ProgressBar(io, 'sample', 4, 2, 10);
  try {
    await sleep(45); // one line before any step: the run is alive (compiling, the first step)
    bar.onStep(at(5, 10, 0));
    await sleep(45);
    bar.onStep(at(3, 10, 2));
    await sleep(45);
  } finally {
    await bar.stop();
  }
  const lines = text().split('\n').filter(Boolean);
  console.log(`    ${lines.length} lines; ${lines.map((l) => JSON.stringify(l)).join('\n      ')}`);
  assert.ok(lines.length >= 3, text());
  assert.ok(!text().includes('\r') && !text().includes('\x1b'), 'no carriage returns or escape codes');
  assert.match(lines[0], /^sample: step 0\/10, batch 1\/2, images\/s \?, [\d.]+ s elapsed, ETA \?$/);
  const middle = lines.find((l) => l.includes('step 5/10'));
  assert.ok(middle, text());
  assert.match(middle!, /^sample: step 5\/10, batch 1\/2, [\d.]+ images\/s, [\d.]+ s elapsed, ETA [\d.]+ s$/);
  assert.match(lines.at(-1)!, /^sample: step 3\/10, batch 2\/2, /);
  // Stopped: no more lines.
  const before = text();
  await sleep(70);
  assert.is(text(), before, 'stop() ends the lines');
});

progress('without a terminal and a short run: nothing before the summary', async () => {
  const { io, text } = captured(false);
  const bar = new ProgressBar(io, 'sample', 1, 1, 2);
  bar.onStep(at(1, 2, 0));
  bar.onStep(at(2, 2, 0));
  await bar.stop();
  assert.is(text(), '');
});

progress('on a terminal: the bar is redrawn in place and cleared at the end', async () => {
  const { io, text } = captured(true);
  const bar = new ProgressBar(io, 'encode', 2, 2, 4);
  bar.onStep(at(4, 4, 0));
  await bar.stop();
  assert.ok(text().startsWith('\r\x1b[Kencode ['), JSON.stringify(text()));
  assert.ok(text().includes('step 4/4'), JSON.stringify(text()));
  assert.ok(text().endsWith('\r\x1b[K'), JSON.stringify(text()));
});

progress('under Deno, the worker keeps printing while the main thread is blocked (as by its WebGPU)', () => {
  // Runs in both runners: the Deno that runs this suite, or the dev dependency's under Node.
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath() ?? 'node_modules/deno/deno';
  const result = spawnSync(deno, ['run', '-A', 'test/util/progress_blocked.ts'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  assert.is(result.status, 0, result.stderr);
  const lines = result.stderr.split('\n').filter((l) => l.startsWith('blocked: '));
  const duringBlock = lines.filter((l) => l.includes('step 3/10'));
  console.log(`    ${duringBlock.length} lines at step 3 during a 1 s block (every 100 ms); last: ${duringBlock.at(-1)}`);
  // The main thread's own timer could not print one of these: stop() follows the block at once.
  assert.ok(duringBlock.length >= 5, result.stderr);
  assert.match(duringBlock.at(-1)!, /^blocked: step 3\/10, [\d.]+ images\/s, [\d.]+ s elapsed, ETA [\d.]+ s$/);
});

progress('compiling without a terminal: plain lines counting programs, then a note that later runs start sooner', async () => {
  const { io, text } = captured(false, 30, 100);
  const line = new CompileProgressLine(io);
  try {
    line.onProgress({ compiled: 0, total: 11 });
    await sleep(45);
    line.onProgress({ compiled: 3, total: 11 });
    await sleep(45);
    line.onProgress({ compiled: 11, total: 11 });
    await sleep(20);
  } finally {
    await line.stop();
  }
  const lines = text().split('\n').filter(Boolean);
  console.log(`    ${lines.map((l) => JSON.stringify(l)).join('\n      ')}`);
  assert.ok(!text().includes('\r') && !text().includes('\x1b'), 'no carriage returns or escape codes');
  assert.match(lines[0], /^compiling GPU programs: 0\/11, [\d.]+ s elapsed$/);
  assert.ok(lines.some((l) => /^compiling GPU programs: 3\/11, /.test(l)), text());
  assert.match(
    lines.at(-1)!,
    /^note: compiling 11 GPU programs took [\d.]+ s; the driver caches compiled shaders, so later runs start sooner$/,
  );
  // After 10 s the line itself says why it is slow, and that it is once.
  const state = { label: 'compiling GPU programs', count: 1, batch: 1, steps: 11, step: 3, batchIndex: 1, startedAt: 0, compiling: true };
  assert.is(plainText(state, 12_000), "compiling GPU programs: 3/11, 12.0 s elapsed; later runs reuse the driver's shader cache\n");
  assert.ok(barText(state, 12_000).endsWith("3/11  12.0 s (later runs reuse the driver's shader cache)"), barText(state, 12_000));
  assert.ok(!plainText(state, 9_000).includes('cache'));
});

progress('compiling quickly: nothing without a terminal; on one, k/n redrawn in place up to n/n and cleared', async () => {
  const quiet = captured(false);
  const short = new CompileProgressLine(quiet.io);
  for (let k = 0; k <= 4; k++) short.onProgress({ compiled: k, total: 4 });
  await short.stop();
  assert.is(quiet.text(), '');

  const { io, text } = captured(true);
  const line = new CompileProgressLine(io);
  for (let k = 0; k <= 4; k++) line.onProgress({ compiled: k, total: 4 });
  await line.stop();
  console.log(`    ${JSON.stringify(text())}`);
  assert.ok(text().startsWith('\r\x1b[Kcompiling GPU programs [------------------------] 0/4  '), JSON.stringify(text()));
  assert.ok(text().includes('\r\x1b[Kcompiling GPU programs [########################] 4/4  '), JSON.stringify(text()));
  assert.ok(text().endsWith('\r\x1b[K'), 'the line is cleared: no note after a short compile');
  // A stop before any progress (the GPU failed to open) prints nothing.
  const none = captured(true);
  await new CompileProgressLine(none.io).stop();
  assert.is(none.text(), '');
});

progress.run();
