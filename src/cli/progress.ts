/**
 * What the command line shows while it works: on a terminal, one progress line redrawn in place
 * (step, batch, elapsed time, ETA); elsewhere (CI, a pipe, a log file) a plain line every few
 * seconds with the steps done, images/s and the ETA, so a minutes-long run shows it is alive.
 * Before the steps, the same for the GPU programs being compiled (a minute on a software adapter
 * with a cold shader cache), and a note when that was long that later runs start sooner.
 *
 * Both are drawn by a timer, as a step can take longer than the interval. Under Deno the main
 * thread is blocked while the GPU works (its WebGPU waits for a readback synchronously), so there
 * the timer runs in a worker (progress_worker.ts) that draws from the last state it was sent.
 */
import type { CompileProgress } from '../gpu/kernel.ts';
import type { StepProgress } from '../sampler/ddim.ts';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal: then the progress bar is drawn in place, else plain lines. */
  isTTY: boolean;
  /** How often a plain progress line is printed when stderr is not a terminal (default 5000). */
  plainProgressMs?: number;
  /** A compile of the GPU programs longer than this says that later runs start sooner (default 10000). */
  slowCompileMs?: number;
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
  /** A compile line: `step` of `steps` GPU programs compiled (count and batch 1). */
  compiling?: boolean;
}

export type ProgressMode = 'bar' | 'plain';

const BAR_WIDTH = 24;
/** The elapsed time is redrawn this often even while a step is running (a big model is slow). */
const TICK_MS = 1000;
/** Without a terminal, one line this often: enough to see progress, few enough for a log. */
const PLAIN_MS = 5000;
/** Clears the terminal's current line. */
export const CLEAR_LINE = '\r\x1b[K';
const SLOW_COMPILE_MS = 10_000;
const COMPILE_LABEL = 'compiling GPU programs';
/** Said on a compile line once it has taken this long: why it is slow, and that it is once. */
const CACHE_HINT_SECONDS = 10;
const CACHE_HINT = "later runs reuse the driver's shader cache";

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

/**
 * "\r\x1b[Ksample [######------] step 12/50  batch 1/2  23.1 s, ETA 1m02s" (no newline); while
 * compiling "\r\x1b[Kcompiling GPU programs [##----] 3/11  12.3 s" (no ETA: programs differ 1000-fold).
 */
export function barText(s: ProgressState, now: number): string {
  const { fraction, elapsed, eta } = measure(s, now);
  const filled = Math.round(BAR_WIDTH * fraction);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  if (s.compiling) {
    const hint = elapsed >= CACHE_HINT_SECONDS ? ` (${CACHE_HINT})` : '';
    return `${CLEAR_LINE}${s.label} ${bar} ${s.step}/${s.steps}  ${formatSeconds(elapsed)}${hint}`;
  }
  const batchPart = batches(s) > 1 ? `  batch ${s.batchIndex}/${batches(s)}` : '';
  return `${CLEAR_LINE}${s.label} ${bar} step ${s.step}/${s.steps}${batchPart}  ${formatSeconds(elapsed)}, ETA ${formatSeconds(eta)}`;
}

/**
 * "sample: step 12/50, batch 1/2, 0.520 images/s, 23.1 s elapsed, ETA 1m02s\n"; while compiling
 * "compiling GPU programs: 3/11, 12.3 s elapsed\n".
 */
export function plainText(s: ProgressState, now: number): string {
  const { fraction, elapsed, eta } = measure(s, now);
  if (s.compiling) {
    const hint = elapsed >= CACHE_HINT_SECONDS ? `; ${CACHE_HINT}` : '';
    return `${s.label}: ${s.step}/${s.steps}, ${formatSeconds(elapsed)} elapsed${hint}\n`;
  }
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

  /** `compiling`: a compile line over `steps` programs (see CompileProgressLine). */
  constructor(private readonly io: CliIo, label: string, count: number, batch: number, steps: number, compiling = false) {
    this.state = { label, count, batch, steps, step: 0, batchIndex: 1, startedAt: Date.now(), ...(compiling ? { compiling } : {}) };
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
    this.update();
  };

  /** A compile line's programs compiled so far. */
  readonly onCompile = (progress: CompileProgress): void => {
    this.state.steps = progress.total;
    this.state.step = progress.compiled;
    this.update();
  };

  /** A compile line's number of programs. */
  get programs(): number {
    return this.state.steps;
  }

  /** The seconds since the line started. */
  get elapsed(): number {
    return (Date.now() - this.state.startedAt) / 1000;
  }

  private update(): void {
    if (this.worker) {
      this.worker.postMessage({ type: 'state', state: { ...this.state } });
      return;
    }
    if (this.mode !== 'bar') return;
    const last = this.state.step === this.state.steps && this.state.batchIndex === batches(this.state);
    // Redrawing faster than a terminal can show is wasted work; the last step is always drawn.
    if (last || performance.now() - this.lastDraw >= 50) this.draw();
  }

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

/**
 * The line shown while a pipeline's GPU programs compile: `onProgress` goes to the pipeline's
 * `onCompileProgress`, and the line starts with its first call (when the count is known);
 * `stop` must follow (awaited), also on failure. A compile longer than `io.slowCompileMs` ends
 * with a note that later runs start sooner: the driver keeps what it compiled (Mesa: ~60 s of
 * a cold `npm run sample` on two cores, under a second once cached).
 */
export class CompileProgressLine {
  private bar: ProgressBar | undefined;

  constructor(private readonly io: CliIo) {}

  readonly onProgress = (progress: CompileProgress): void => {
    this.bar ??= new ProgressBar(this.io, COMPILE_LABEL, 1, 1, progress.total, true);
    this.bar.onCompile(progress);
  };

  async stop(): Promise<void> {
    const bar = this.bar;
    if (!bar) return;
    this.bar = undefined;
    await bar.stop();
    const seconds = bar.elapsed;
    if (seconds * 1000 >= (this.io.slowCompileMs ?? SLOW_COMPILE_MS)) {
      const programs = bar.programs;
      this.io.stderr(
        `note: compiling ${plural(programs, 'GPU program')} took ${formatSeconds(seconds)}; ` +
          'the driver caches compiled shaders, so later runs start sooner\n',
      );
    }
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
