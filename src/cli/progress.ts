/**
 * What the command line shows while it works: on a terminal, one progress line redrawn in place
 * (step, batch, elapsed time, ETA); elsewhere nothing until the one-line summary at the end.
 */
import type { StepProgress } from '../sampler/ddim.ts';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal: only then is the progress bar drawn. */
  isTTY: boolean;
}

const BAR_WIDTH = 24;
/** The elapsed time is redrawn this often even while a step is running (a big model is slow). */
const TICK_MS = 1000;

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.round(seconds - 60 * minutes)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/**
 * A progress bar over `count` images run in batches of `batch`, each batch taking `steps` steps.
 * `onStep` goes straight to the sampler's onStep option; `stop` must follow, also on failure.
 */
export class ProgressBar {
  private readonly startTime = performance.now();
  private drawn = false;
  private lastDraw = -Infinity;
  private step = 0;
  private batchIndex = 1;
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly io: CliIo,
    private readonly label: string,
    private readonly count: number,
    private readonly batch: number,
    private steps: number,
  ) {
    if (!io.isTTY) return;
    this.draw();
    this.ticker = setInterval(() => this.draw(), TICK_MS);
  }

  private get batches(): number {
    return Math.ceil(this.count / this.batch);
  }

  readonly onStep = (progress: StepProgress): void => {
    if (!this.io.isTTY) return;
    this.steps = progress.total;
    this.step = progress.step;
    this.batchIndex = Math.floor(progress.firstImage / this.batch) + 1;
    const last = this.step === this.steps && this.batchIndex === this.batches;
    // Redrawing faster than a terminal can show is wasted work; the last step is always drawn.
    if (last || performance.now() - this.lastDraw >= 50) this.draw();
  };

  private draw(): void {
    const now = performance.now();
    this.lastDraw = now;
    const fraction = ((this.batchIndex - 1) * this.steps + this.step) / (this.batches * this.steps);
    const elapsed = (now - this.startTime) / 1000;
    const eta = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : NaN;
    const filled = Math.round(BAR_WIDTH * fraction);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
    const batchPart = this.batches > 1 ? `  batch ${this.batchIndex}/${this.batches}` : '';
    this.io.stderr(
      `\r\x1b[K${this.label} ${bar} step ${this.step}/${this.steps}${batchPart}  ${formatSeconds(elapsed)}, ETA ${formatSeconds(eta)}`,
    );
    this.drawn = true;
  }

  /** Stops redrawing and removes the bar, so that what follows starts on a clean line. */
  stop(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.drawn) this.io.stderr('\r\x1b[K');
    this.drawn = false;
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
