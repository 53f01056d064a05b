/**
 * What the command line shows while it works: on a terminal, one progress line redrawn in place
 * (step, batch, elapsed time, ETA); elsewhere (CI, a pipe, a log file) a plain line every few
 * seconds with the steps done, images/s and the ETA, so a minutes-long run shows it is alive.
 *
 * Both are drawn by a timer, as a step can take longer than the interval. Under Deno the main
 * thread is blocked while the GPU works (its WebGPU waits for a readback synchronously), so there
 * the timer runs in a worker (progress_worker.ts) that draws from the last state it was sent.
 */
import type { StepProgress } from '../sampler/ddim.ts';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal: then the progress bar is drawn in place, else plain lines. */
  isTTY: boolean;
  /** How often a plain progress line is printed when stderr is not a terminal (default 5000). */
  plainProgressMs?: number;
  /**
   * Draw the progress from a worker that writes to the process's stderr itself (Deno): set only
   * when `stderr` is that stream. Where no worker can be started, the timer runs here.
   */
  progressWorker?: boolean;
}

/** What a progress line is made of; the worker draws from a copy of it. */
export interface ProgressState {
  label: string;
  count: number;
  batch: number;
  steps: number;
  /** Steps done in the current batch. */
  step: number;
  /** 1-based. */
  batchIndex: number;
  /** Date.now() at the start: a clock that a worker shares. */
  startedAt: number;
}

export type ProgressMode = 'bar' | 'plain';

const BAR_WIDTH = 24;
/** The elapsed time is redrawn this often even while a step is running (a big model is slow). */
const TICK_MS = 1000;
/** Without a terminal, one line this often: enough to see progress, few enough for a log. */
const PLAIN_MS = 5000;
/** Clears the terminal's current line. */
export const CLEAR_LINE = '\r\x1b[K';

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.round(seconds - 60 * minutes)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

function batches(s: ProgressState): number {
  return Math.ceil(s.count / s.batch);
}

/** The share of all steps of all batches done, the seconds since the start, and the ETA. */
function measure(s: ProgressState, now: number): { fraction: number; elapsed: number; eta: number } {
  const fraction = ((s.batchIndex - 1) * s.steps + s.step) / (batches(s) * s.steps);
  const elapsed = (now - s.startedAt) / 1000;
  const eta = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : NaN;
  return { fraction, elapsed, eta };
}

/** "\r\x1b[Ksample [######------] step 12/50  batch 1/2  23.1 s, ETA 1m02s" (no newline) */
export function barText(s: ProgressState, now: number): string {
  const { fraction, elapsed, eta } = measure(s, now);
  const filled = Math.round(BAR_WIDTH * fraction);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const batchPart = batches(s) > 1 ? `  batch ${s.batchIndex}/${batches(s)}` : '';
  return `${CLEAR_LINE}${s.label} ${bar} step ${s.step}/${s.steps}${batchPart}  ${formatSeconds(elapsed)}, ETA ${formatSeconds(eta)}`;
}

/** "sample: step 12/50, batch 1/2, 0.520 images/s, 23.1 s elapsed, ETA 1m02s\n" */
export function plainText(s: ProgressState, now: number): string {
  const { fraction, elapsed, eta } = measure(s, now);
  const batchPart = batches(s) > 1 ? `, batch ${s.batchIndex}/${batches(s)}` : '';
  const perSecond = fraction > 0 && elapsed > 0 ? `${((fraction * s.count) / elapsed).toPrecision(3)} images/s` : 'images/s ?';
  return `${s.label}: step ${s.step}/${s.steps}${batchPart}, ${perSecond}, ${formatSeconds(elapsed)} elapsed, ETA ${formatSeconds(eta)}\n`;
}

/** Messages to the worker; it answers 'stopped' once it has cleared its line and stopped. */
export type WorkerMessage =
  | { type: 'start'; state: ProgressState; mode: ProgressMode; intervalMs: number }
  | { type: 'state'; state: ProgressState }
  | { type: 'stop' };

/** The worker's side of the main thread, as far as the bar needs it. */
interface ProgressWorkerHandle {
  postMessage(message: WorkerMessage): void;
  terminate(): void;
  addEventListener(type: 'message' | 'error', listener: (event: Event) => void): void;
}

/** The worker, when this runtime has workers and its script is beside this module; else undefined. */
function startWorker(): ProgressWorkerHandle | undefined {
  const WorkerClass = (globalThis as { Worker?: new (url: URL, options: { type: 'module' }) => ProgressWorkerHandle }).Worker;
  if (!WorkerClass || !import.meta.url.endsWith('.ts')) return undefined; // esbuild's bundles for Node have no worker script
  try {
    return new WorkerClass(new URL('./progress_worker.ts', import.meta.url), { type: 'module' });
  } catch {
    return undefined;
  }
}

/** How long stop() waits for the worker to clear its line before ending it anyway. */
const WORKER_STOP_MS = 2000;

/**
 * A progress bar over `count` images run in batches of `batch`, each batch taking `steps` steps.
 * `onStep` goes straight to the sampler's onStep option; `stop` must follow (awaited), also on
 * failure.
 */
export class ProgressBar {
  private readonly state: ProgressState;
  private readonly mode: ProgressMode;
  private readonly intervalMs: number;
  private drawn = false;
  private lastDraw = -Infinity;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private worker: ProgressWorkerHandle | undefined;
  private workerStopped: (() => void) | undefined;

  constructor(private readonly io: CliIo, label: string, count: number, batch: number, steps: number) {
    this.state = { label, count, batch, steps, step: 0, batchIndex: 1, startedAt: Date.now() };
    this.mode = io.isTTY ? 'bar' : 'plain';
    this.intervalMs = io.isTTY ? TICK_MS : (io.plainProgressMs ?? PLAIN_MS);
    if (io.progressWorker) this.worker = startWorker();
    if (this.worker) {
      this.worker.addEventListener('message', () => this.workerStopped?.());
      // A worker that fails to load leaves the drawing to this thread.
      this.worker.addEventListener('error', (event) => {
        event.preventDefault();
        this.worker?.terminate();
        this.worker = undefined;
        this.workerStopped?.();
        this.startHere();
      });
      this.worker.postMessage({ type: 'start', state: { ...this.state }, mode: this.mode, intervalMs: this.intervalMs });
    } else {
      this.startHere();
    }
  }

  private startHere(): void {
    if (this.ticker !== undefined) return;
    if (this.mode === 'bar') this.draw();
    this.ticker = setInterval(
      () => (this.mode === 'bar' ? this.draw() : this.io.stderr(plainText(this.state, Date.now()))),
      this.intervalMs,
    );
  }

  readonly onStep = (progress: StepProgress): void => {
    this.state.steps = progress.total;
    this.state.step = progress.step;
    this.state.batchIndex = Math.floor(progress.firstImage / this.state.batch) + 1;
    if (this.worker) {
      this.worker.postMessage({ type: 'state', state: { ...this.state } });
      return;
    }
    if (this.mode !== 'bar') return;
    const last = this.state.step === this.state.steps && this.state.batchIndex === batches(this.state);
    // Redrawing faster than a terminal can show is wasted work; the last step is always drawn.
    if (last || performance.now() - this.lastDraw >= 50) this.draw();
  };

  private draw(): void {
    this.lastDraw = performance.now();
    this.io.stderr(barText(this.state, Date.now()));
    this.drawn = true;
  }

  /** Stops drawing and removes the bar, so that what follows starts on a clean line. */
  async stop(): Promise<void> {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.drawn) this.io.stderr(CLEAR_LINE);
    this.drawn = false;
    const worker = this.worker;
    if (!worker) return;
    let timeout: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((done) => {
      this.workerStopped = done;
      timeout = setTimeout(done, WORKER_STOP_MS);
      worker.postMessage({ type: 'stop' });
    });
    clearTimeout(timeout);
    worker.terminate();
    this.worker = undefined;
  }
}

/** "12.3 s (1.30 images/s)" */
export function rate(count: number, seconds: number): string {
  const perSecond = seconds > 0 ? count / seconds : Infinity;
  return `${formatSeconds(seconds)} (${perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toPrecision(3)} images/s)`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
