/**
 * File access for the command line. Problems the user can fix (a wrong path, a missing folder,
 * no permission) become one-line `UserError`s; anything else is rethrown as it came.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { UserError } from './errors.ts';

const READ_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'no such file',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
};

const WRITE_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such directory',
  ENOTDIR: 'no such directory',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
};

/** The whole file; `what` names it for the message, e.g. "weights" → cannot read weights 'x': no such file. */
export async function readFileBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    const problem = READ_PROBLEMS[errorCode(error)];
    if (problem) throw new UserError(`cannot read ${what} '${path}': ${problem}`);
    throw error;
  }
}

/**
 * Writes `data` to `path` so that readers see the old file or the complete new one, never a
 * part: the bytes go to a temporary file beside it (same file system, so the rename is atomic),
 * are flushed to disk, and then replace `path`. On failure the temporary file is removed.
 */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {});
    const problem = WRITE_PROBLEMS[errorCode(error)];
    if (problem) throw new UserError(`cannot write '${path}': ${problem}`);
    throw error;
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}
