/**
 * --gpu-memory on the command line: a model needing more than the budget is refused with status 2,
 * one line naming what it needs and what is allowed, and nothing written; a bad size likewise.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './util/cli_run.ts';

const SD = '../shared/golden/sd/tiny-sd';

let folder = '';
const test = suite('cli --gpu-memory');
test.before(() => {
  folder = mkdtempSync(join(tmpdir(), 'cli-memory-'));
});
test.after(() => rmSync(folder, { recursive: true, force: true }));

test('a model over the budget, or a bad size: status 2, one line with the numbers, nothing written', async () => {
  const cases: [string[], RegExp][] = [
    // emoji32 (the default model): its UNet alone is over 1 MiB.
    [
      ['sample', '--n', '1', '--gpu-memory', '1M', '--out', join(folder, 'never.png')],
      /^error: unet needs [\d.]+ MiB of GPU memory \(weights [\d.]+ MiB, activations [\d.]+ (KiB|MiB)\); the GPU memory budget for .* \(--gpu-memory\) allows 1\.0 MiB/,
    ],
    // The tiny SD folder: its UNet, compiled first, is already over 256 KiB.
    [
      ['sample', '--model', SD, '--prompt', 'a cat', '--gpu-memory', '256K', '--out', join(folder, 'never.png')],
      /^error: unet needs [\d.]+ MiB of GPU memory \(weights .*\); the GPU memory budget for .* allows 256\.0 KiB/,
    ],
    [['sample', '--gpu-memory', 'lots', '--out', join(folder, 'never.png')], /^error: --gpu-memory must be a size such as 6G/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await cli(argv);
    console.log(`    ${argv.slice(0, 6).join(' ').replaceAll(folder + '/', '').padEnd(56)} -> ${r.code}  ${r.stderr.trim()}`);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.is(r.stdout, '');
  }
  assert.equal(readdirSync(folder), []);
});

test('at f32 the one line names --precision f16 as the remedy; at f16 (or f16-packed) it does not', async () => {
  const f32 = await cli(['sample', '--n', '1', '--gpu-memory', '1M', '--out', join(folder, 'never.png')]);
  const f16 = await cli(['sample', '--n', '1', '--gpu-memory', '1M', '--precision', 'f16', '--out', join(folder, 'never.png')]);
  console.log(`    --precision f16 -> ${f16.code}  ${f16.stderr.trim().split('\n').at(-1)}`);
  assert.is(f32.code, 2, f32.stderr);
  assert.is(f16.code, 2, f16.stderr);
  assert.match(f32.stderr, /precision 'f16' \(--precision f16\)(, run as f16-packed [^,]*,)? stores the weights in half the memory/);
  assert.match(f16.stderr, /error: unet needs [\d.]+ MiB of GPU memory/);
  assert.not.match(f16.stderr, /stores the weights in half/);
  assert.equal(readdirSync(folder), []);
});

test.run();
