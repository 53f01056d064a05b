/**
 * The command line under Node with stderr on a file or a socket: run again as a child whose stderr
 * is a pipe, and pass on what it writes.
 *
 * Dawn prints two notes about lowered limits on fd 2 when it finds adapters (src/gpu/dawn_stderr.ts).
 * They are held back by pointing fd 2 elsewhere for that call and back again, which Node can do
 * only for a terminal or a pipe: it has no dup2, and a file or socket reopened is not the same
 * stream (a file gets an offset of its own, a socket cannot be reopened). So there the command runs
 * in a child with the same arguments, stdin and stdout, and its stderr on a pipe to this process,
 * which writes it on; the child's exit status (or signal) is this process's. The child's stderr
 * is a pipe, not the terminal or the file, so its lines keep their order but may reach a file
 * shared with stdout (`> log 2>&1`) a moment after stdout lines written later. Deno swaps fd 2 with
 * libc's dup2 and never needs this.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';

/** Set in the child, so that it runs the command itself. */
const RELAY_CHILD = 'DDIM_WEBGPU_STDERR_RELAY';

/**
 * Whether this process should run the command in a child: Node on Linux (where the child's pipe
 * can be reopened, src/gpu/dawn_stderr.ts), not the child itself, fd 2 a file or socket.
 */
export function needsStderrRelay(): boolean {
  const g = globalThis as { Deno?: unknown };
  if (g.Deno !== undefined || process.platform !== 'linux' || process.env[RELAY_CHILD]) return false;
  try {
    const stat = fstatSync(2);
    return stat.isFile() || stat.isSocket();
  } catch {
    return false;
  }
}

/**
 * A named pipe opened at both ends and already unlinked: the child's stderr must be a pipe (Node's
 * own 'pipe' is a socket pair, which cannot be reopened either), and Node makes pipes only through
 * mkfifo(1). Undefined where that fails.
 */
function namedPipe(): { readFd: number; writeFd: number } | undefined {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'ddim-webgpu-stderr-'));
  } catch {
    return undefined; // no writable temporary folder
  }
  const path = join(dir, 'pipe');
  try {
    execFileSync('mkfifo', ['-m', '600', path], { stdio: 'ignore' });
    // Read end first, without waiting for a writer; then the write end finds it.
    const readFd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    return { readFd, writeFd: openSync(path, fsConstants.O_WRONLY) };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs this same command (Node's flags, the script, `args`) in a child whose stderr is a pipe to
 * this process, which writes what comes through to its own stderr; resolves with the status to
 * exit with, or undefined where no pipe could be made (then the caller runs the command itself).
 */
export function runWithStderrRelay(args: string[]): Promise<number> | undefined {
  const pipe = namedPipe();
  if (!pipe) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
    stdio: ['inherit', 'inherit', pipe.writeFd],
    env: { ...process.env, [RELAY_CHILD]: '1' },
  });
  closeSync(pipe.writeFd);
  const relay = new Socket({ fd: pipe.readFd, readable: true, writable: false });
  relay.pipe(process.stderr, { end: false });
  const drained = new Promise<void>((resolve) => relay.on('close', () => resolve()));
  // Ctrl-C reaches the child too (the same process group): it decides what an interrupt means.
  // A signal sent to this process alone is passed on.
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, () => child.kill(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return new Promise((resolve) => {
    child.on('error', (error) => {
      relay.destroy();
      process.stderr.write(`error: could not start the command again to keep stderr clean: ${error.message}\n`);
      resolve(1);
    });
    child.on('exit', async (code, signal) => {
      for (const [name, handler] of handlers) process.off(name, handler);
      await drained; // everything the child wrote has come through
      // A child ended by a signal ends with the shell's status for it.
      const status = code ?? 128 + (signal ? osConstants.signals[signal] : 0);
      // Written out before the caller exits: a socket's writes are asynchronous.
      process.stderr.write('', () => resolve(status));
    });
  });
}
