/**
 * Runs the uvu suites of the given test modules in one process, then prints one plain summary
 * line ("N passed, N failed"). Shared by the Node runner (which imports esbuild's output) and the
 * Deno runner (which imports the .ts files).
 */
// deno-lint-ignore-file no-explicit-any
export async function runSuites(files: string[], importModule: (file: string) => Promise<unknown>): Promise<number> {
  const g = globalThis as any;
  g.UVU_DEFER = 1; // uvu must see this before it is first evaluated
  const uvu = await import('uvu');
  g.UVU_QUEUE = g.UVU_QUEUE || [];
  for (const [index, file] of files.entries()) {
    g.UVU_QUEUE.push([file]);
    g.UVU_INDEX = index;
    await importModule(file);
  }
  // Each suite's wall time after its line, and the slowest files at the end: where a run's time goes.
  const fileSeconds = new Map<string, number>();
  for (const group of g.UVU_QUEUE as [string, ...(() => Promise<unknown>)[]][]) {
    const [file, ...runs] = group;
    group.splice(
      1,
      runs.length,
      ...runs.map((run) => async () => {
        const start = performance.now();
        try {
          return await run();
        } finally {
          const seconds = (performance.now() - start) / 1000;
          fileSeconds.set(file, (fileSeconds.get(file) ?? 0) + seconds);
          g.process.stdout.write(`    ${seconds.toFixed(1)} s\n`);
        }
      }),
    );
  }
  // uvu prints its totals but does not return them; read them off its own output.
  const stdout = g.process.stdout;
  const originalWrite = stdout.write.bind(stdout);
  let transcript = '';
  stdout.write = (chunk: any, ...rest: any[]) => {
    transcript += String(chunk);
    return originalWrite(chunk, ...rest);
  };
  try {
    await (uvu as any).exec();
  } finally {
    stdout.write = originalWrite;
  }
  const plain = transcript.replace(new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g'), '');
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const failed = total - passed;
  const slowest = [...fileSeconds].sort((a, b) => b[1] - a[1]);
  console.log(`seconds per file: ${slowest.map(([file, seconds]) => `${file} ${seconds.toFixed(1)}`).join(', ')}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && total > 0 ? 0 : 1;
}

/** Test files to run: every test/*.test.ts, or those whose names contain one of the filters. */
export function selectTests(all: string[], filters: string[]): string[] {
  const tests = all.filter((f) => f.endsWith('.test.ts')).sort();
  if (filters.length === 0) return tests;
  return tests.filter((f) => filters.some((w) => f.includes(w)));
}
