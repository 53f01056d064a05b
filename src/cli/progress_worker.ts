/**
 * The progress timer in a worker (Deno): the main thread is blocked while the GPU works, so this
 * thread keeps the bar's elapsed time and the plain lines going, drawing from the last state the
 * main thread sent (progress.ts), and writes to the process's stderr itself.
 */
import { barText, CLEAR_LINE, plainText, type ProgressMode, type ProgressState, type WorkerMessage } from './progress.ts';

interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerMessage>) => void) | null;
  postMessage(message: 'stopped'): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
const encoder = new TextEncoder();
let state: ProgressState | undefined;
let mode: ProgressMode = 'plain';
let timer: ReturnType<typeof setInterval> | undefined;
let drawn = false;

function write(text: string): void {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stderr.writeSync(bytes.subarray(at));
}

function draw(): void {
  if (!state) return;
  if (mode === 'bar') {
    write(barText(state, Date.now()));
    drawn = true;
  } else {
    write(plainText(state, Date.now()));
  }
}

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case 'start':
      state = message.state;
      mode = message.mode;
      if (mode === 'bar') draw();
      timer = setInterval(draw, message.intervalMs);
      break;
    case 'state': {
      const redraw = mode === 'bar' && state !== undefined && message.state.step !== state.step;
      state = message.state;
      if (redraw) draw();
      break;
    }
    case 'stop':
      if (timer !== undefined) clearInterval(timer);
      if (drawn) write(CLEAR_LINE);
      scope.postMessage('stopped');
      scope.close();
      break;
  }
};
