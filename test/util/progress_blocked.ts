/**
 * Run by test/progress.test.ts under Deno: plain progress lines from the worker every 100 ms
 * while this thread is blocked for a second (as Deno's WebGPU blocks it while the GPU works).
 * Prints "blocked from A to B" (ms since the start) on stdout, the lines on stderr.
 */
import { ProgressBar } from '../../src/cli/progress.ts';

const encoder = new TextEncoder();
const io = {
  stdout: () => {},
  stderr: (text: string) => void Deno.stderr.writeSync(encoder.encode(text)),
  isTTY: false,
  plainProgressMs: 100,
  progressWorker: true,
};
const bar = new ProgressBar(io, 'blocked', 2, 2, 10);
await new Promise((done) => setTimeout(done, 400)); // the worker starts
bar.onStep({ step: 3, total: 10, t: 700, firstImage: 0 });
const from = Date.now();
while (Date.now() - from < 1000) {
  // busy: no timer of this thread can run
}
const to = Date.now();
await bar.stop();
console.log(`blocked from ${from} to ${to}`);
