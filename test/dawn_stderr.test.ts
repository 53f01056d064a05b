import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { sortDawnOutput } from '../src/gpu/dawn_stderr.ts';

const s = suite('dawn stderr');

const UNIFORM_NOTE =
  'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';
const STORAGE_NOTE =
  'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 500000 to 16 to fit dynamic offset allocation limit.';

s('only the limit clamp notes are held back; anything else Dawn prints is passed on, in order', () => {
  const loaderError = 'ERROR:            loader_icd_scan: Failed loading library associated with ICD JSON x.so.';
  const otherWarning = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 for another reason.';
  const sorted = sortDawnOutput(`${UNIFORM_NOTE}\n${loaderError}\n${STORAGE_NOTE}\r\n${otherWarning}\nno newline at the end`);
  assert.equal(sorted.notes, [UNIFORM_NOTE, STORAGE_NOTE]);
  assert.is(sorted.passOn, `${loaderError}\n${otherWarning}\nno newline at the end`);
  assert.equal(sortDawnOutput(''), { passOn: '', notes: [] });
  assert.equal(sortDawnOutput(`  ${UNIFORM_NOTE}\n`).notes, [], 'a line that only contains a note is not the note');
});

// The probe makes a device as every run does (Node, Dawn), with stderr lines of its own around it.
const node = (globalThis as { Deno?: unknown }).Deno ? 'node' : process.execPath;
const PROBE = `'${node}' scripts/node.mjs test/util/dawn_stderr_probe.ts`;

interface ProbeRun {
  stderrLines: string[];
  adapter: string;
  notes: string[];
}

/** Runs the probe under sh with its stderr on a pipe or, through script(1), on a terminal. */
function runProbe(stderrOn: 'pipe' | 'terminal', env: Record<string, string> = {}): ProbeRun {
  // The probe's stdout goes to a file, so what comes back on the pipe or terminal is its stderr alone.
  const stdoutFile = `build/dawn-stderr-probe-${process.pid}.json`;
  const options = { encoding: 'utf8' as const, env: { ...process.env, ...env } };
  const result = stderrOn === 'pipe'
    ? spawnSync('sh', ['-c', `${PROBE} 2>&1 > ${stdoutFile} | cat`], options)
    : spawnSync('script', ['-qec', `${PROBE} > ${stdoutFile}`, '/dev/null'], options);
  assert.is(result.status, 0, `${result.stdout}\n${result.stderr}`);
  const { adapter, notes } = JSON.parse(readFileSync(stdoutFile, 'utf8'));
  rmSync(stdoutFile);
  const stderrLines = result.stdout.split(/\r?\n/).filter((line) => line.trim() !== '');
  return { stderrLines, adapter, notes };
}

for (const stderrOn of ['terminal', 'pipe'] as const) {
  s(`with stderr on a ${stderrOn}, making a device prints none of Dawn's limit notes; the run's own lines all arrive`, () => {
    const { stderrLines, adapter, notes } = runProbe(stderrOn);
    console.log(`    ${adapter}: stderr ${JSON.stringify(stderrLines)}; held back ${notes.length}`);
    assert.equal(stderrLines, ['probe: stderr before', 'probe: stderr after', 'probe: fd 2 after']);
    for (const note of notes) assert.match(note, /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced/);
    // lavapipe allows a million dynamic buffers, so Dawn clamps both counts there: the notes were made, and held.
    if (/llvmpipe|lavapipe/.test(adapter)) assert.is(notes.length, 2, 'both notes held back');
  });
}

s('what else is printed while the adapter is found (here the Vulkan loader on a broken driver) still reaches stderr', () => {
  const brokenDriver = `build/dawn-stderr-broken-icd-${process.pid}.json`;
  writeFileSync(
    brokenDriver,
    JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: '/nonexistent/libbroken_icd.so', api_version: '1.3.0' } }),
  );
  const extra = process.env.VK_ADD_DRIVER_FILES;
  let run: ProbeRun;
  try {
    run = runProbe('pipe', { VK_ADD_DRIVER_FILES: extra ? `${brokenDriver}:${extra}` : brokenDriver, VK_LOADER_DEBUG: 'error' });
  } finally {
    rmSync(brokenDriver);
  }
  const { stderrLines, notes } = run;
  const loaderLines = stderrLines.filter((line) => line.includes('libbroken_icd.so'));
  console.log(`    ${loaderLines.length} loader lines passed on, e.g. ${JSON.stringify(loaderLines[0])}; held back ${notes.length}`);
  assert.ok(loaderLines.length > 0, stderrLines.join('\n'));
  assert.is(stderrLines[0], 'probe: stderr before');
  assert.equal(stderrLines.slice(-2), ['probe: stderr after', 'probe: fd 2 after'], 'passed on before the run went on');
  assert.not.ok(stderrLines.some((line) => line.includes('artificially reduced')), stderrLines.join('\n'));
});

// Deno loads Dawn only with the ffi permission, and then swaps fd 2 through libc's dup2: any
// stream, a file (alone or shared with stdout, as `> log 2>&1` makes it) included.
const DENO_PROBE = 'node_modules/deno/deno run -A test/util/dawn_stderr_probe.ts';
const DENO_STDERR: Record<string, (stdoutFile: string, stderrFile: string) => string> = {
  pipe: (out) => `${DENO_PROBE} 2>&1 > ${out} | cat`,
  file: (out, err) => `${DENO_PROBE} > ${out} 2> ${err}`,
  'file shared with stdout': (_, err) => `${DENO_PROBE} > ${err} 2>&1`,
};
for (const [stderrOn, command] of Object.entries(DENO_STDERR)) {
  s(`under Deno with Dawn, stderr on a ${stderrOn}: none of Dawn's limit notes; the run's own lines all arrive`, () => {
    const [stdoutFile, stderrFile] = ['json', 'err'].map((ext) => `build/dawn-stderr-deno-probe-${process.pid}.${ext}`);
    writeFileSync(stdoutFile, '');
    writeFileSync(stderrFile, '');
    try {
      const result = spawnSync('sh', ['-c', command(stdoutFile, stderrFile)], { encoding: 'utf8' });
      assert.is(result.status, 0, `${result.stdout}\n${result.stderr}`);
      const text = stderrOn === 'pipe' ? result.stdout : readFileSync(stderrFile, 'utf8');
      const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
      // Shared with stdout, the probe's JSON is the file's last line.
      const report = stderrOn === 'file shared with stdout' ? lines.pop()! : readFileSync(stdoutFile, 'utf8');
      const { adapter, notes } = JSON.parse(report);
      console.log(`    ${adapter}: stderr ${JSON.stringify(lines)}; held back ${notes.length}`);
      assert.equal(lines, ['probe: stderr before', 'probe: stderr after', 'probe: fd 2 after']);
      if (/llvmpipe|lavapipe/.test(adapter)) assert.is(notes.length, 2, 'both notes held back');
    } finally {
      rmSync(stdoutFile);
      rmSync(stderrFile);
    }
  });
}

// Node has no dup2: with stderr on a file or a socket, the command line runs itself again as a
// child whose stderr is a pipe (src/cli/stderr_relay.ts) and passes on what it prints. Node's own
// 'pipe' in spawnSync is a socket pair, so the last case is stderr on a socket.
const CLI = `'${node}' scripts/node.mjs sample.ts`;
const NODE_CLI: Record<string, (args: string, out: string, err: string) => string> = {
  file: (args, out, err) => `${CLI} ${args} > ${out} 2> ${err}`,
  'file shared with stdout': (args, _, err) => `${CLI} ${args} > ${err} 2>&1`,
};
for (const stderrOn of [...Object.keys(NODE_CLI), 'socket']) {
  s(`the command line under Node, stderr on a ${stderrOn}: none of Dawn's limit notes; its output, errors and status arrive`, () => {
    const [stdoutFile, stderrFile, png] = ['out', 'err', 'png'].map((ext) => `build/dawn-stderr-cli-${process.pid}.${ext}`);
    const run = (args: string): { status: number | null; stdout: string; stderr: string } => {
      if (stderrOn === 'socket') {
        const result = spawnSync('sh', ['-c', `${CLI} ${args}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
      }
      writeFileSync(stdoutFile, '');
      const result = spawnSync('sh', ['-c', NODE_CLI[stderrOn](args, stdoutFile, stderrFile)], { encoding: 'utf8' });
      return { status: result.status, stdout: readFileSync(stdoutFile, 'utf8'), stderr: readFileSync(stderrFile, 'utf8') };
    };
    try {
      const made = run(`--n 1 --steps 1 --out ${png}`);
      console.log(`    stdout ${JSON.stringify(made.stdout.trim())}; stderr ${JSON.stringify(made.stderr.trim())}`);
      assert.is(made.status, 0, made.stderr);
      assert.not.match(made.stderr, /artificially reduced/);
      // Shared with stdout, the file holds the run's line; otherwise stdout does.
      assert.match(stderrOn === 'file shared with stdout' ? made.stderr : made.stdout, /1 step x 1 image .* -> /);
      assert.ok(readFileSync(png).length > 0);
      const refused = run('--n 1 --steps 1 --no-such-flag');
      assert.is(refused.status, 2, 'the status comes back through the relay');
      assert.match(refused.stderr, /^error: unknown option '--no-such-flag'/);
    } finally {
      for (const file of [stdoutFile, stderrFile, png]) rmSync(file, { force: true });
    }
  });
}

s("the bench under Node, stderr on a file: none of Dawn's limit notes; its lines and a usage error's status arrive", () => {
  const [stdoutFile, stderrFile] = ['out', 'err'].map((ext) => `build/dawn-stderr-bench-${process.pid}.${ext}`);
  const bench = (args: string) => {
    const result = spawnSync('sh', ['-c', `'${node}' scripts/node.mjs scripts/bench.ts ${args} > ${stdoutFile} 2> ${stderrFile}`], {
      encoding: 'utf8',
    });
    return { status: result.status, stdout: readFileSync(stdoutFile, 'utf8'), stderr: readFileSync(stderrFile, 'utf8') };
  };
  try {
    const ran = bench('--quick');
    console.log(`    stderr's first lines ${JSON.stringify(ran.stderr.split('\n').slice(0, 2))}`);
    assert.is(ran.status, 0, ran.stderr);
    assert.not.match(ran.stderr, /artificially reduced/);
    assert.match(ran.stderr, /^adapter: /);
    const refused = bench('--quick --no-such-flag');
    assert.is(refused.status, 2, 'the status comes back through the relay');
    assert.match(refused.stderr, /^bench: unknown option --no-such-flag/);
  } finally {
    for (const file of [stdoutFile, stderrFile]) rmSync(file, { force: true });
  }
});

s("--verbose puts the adapter, its limits and Dawn's held-back notes on stderr, each line marked", () => {
  const png = `build/dawn-stderr-verbose-${process.pid}.png`;
  try {
    const result = spawnSync('sh', ['-c', `${CLI} --n 1 --steps 1 --out ${png} --verbose 2>&1 > /dev/null | cat`], { encoding: 'utf8' });
    assert.is(result.status, 0, result.stdout);
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    console.log(lines.map((line) => `    ${line}`).join('\n'));
    assert.ok(lines.every((line) => line.startsWith('verbose: ')), 'nothing else on stderr');
    assert.match(lines[0], /^verbose: adapter .+, shader-f16 (yes|no), timestamps (yes|no)$/);
    assert.match(lines[1], /^verbose: limits: storage binding \d+ MiB, buffer \d+ MiB, \d+ storage buffers per stage/);
    const notes = lines.slice(2);
    for (const note of notes) assert.match(note, /^verbose: the driver said while the adapter was found: Warning: maxDynamic/);
    // lavapipe under Dawn: both clamp notes, now shown instead of dropped.
    if (/llvmpipe.*\[dawn\]/.test(lines[0])) assert.is(notes.length, 2);
  } finally {
    rmSync(png, { force: true });
  }
});

s.run();
