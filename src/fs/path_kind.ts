import { statSync } from 'node:fs';

export type PathKind = 'file' | 'dir' | 'missing' | 'other';

/** What is at `path`, without throwing: a missing path (or one that cannot be stat'ed) is 'missing'. */
export function pathKind(path: string): PathKind {
  try {
    const s = statSync(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
}
