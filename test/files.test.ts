import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileBytes, writeFileAtomic } from '../src/cli/files.ts';
import { UserError } from '../src/cli/errors.ts';

const s = suite('files');

let folder = '';
s.before.each(() => {
  folder = mkdtempSync(join(tmpdir(), 'ddim-files-'));
});
s.after.each(() => {
  rmSync(folder, { recursive: true, force: true });
});

async function userError(promise: Promise<unknown>, message: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, UserError);
    assert.is((error as Error).message, message);
    return;
  }
  assert.unreachable(`expected UserError: ${message}`);
}

s('writeFileAtomic creates and replaces a file, leaving no temporary file', async () => {
  const path = join(folder, 'out.png');
  await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
  assert.equal([...readFileSync(path)], [1, 2, 3]);
  await writeFileAtomic(path, Uint8Array.of(9).subarray(0, 1));
  assert.equal([...readFileSync(path)], [9]);
  assert.equal(readdirSync(folder), ['out.png']);
});

s('writeFileAtomic reports a missing folder as a user error and writes nothing', async () => {
  const path = join(folder, 'missing', 'out.png');
  await userError(writeFileAtomic(path, Uint8Array.of(1)), `cannot write '${path}': no such directory`);
  assert.equal(readdirSync(folder), []);
});

s('writeFileAtomic removes its temporary file when the final rename fails', async () => {
  const path = join(folder, 'taken');
  mkdirSync(path);
  writeFileSync(join(path, 'keep'), 'x');
  await userError(writeFileAtomic(path, Uint8Array.of(1)), `cannot write '${path}': it is a directory`);
  assert.equal(readdirSync(folder), ['taken'], 'no temporary file left beside it');
  assert.equal(readdirSync(path), ['keep'], 'the folder is untouched');
});

s('readFileBytes returns the bytes as a plain Uint8Array', async () => {
  const path = join(folder, 'weights.safetensors');
  writeFileSync(path, Uint8Array.of(5, 6, 7));
  const bytes = await readFileBytes(path, 'weights');
  assert.is(Object.getPrototypeOf(bytes), Uint8Array.prototype);
  assert.equal([...bytes], [5, 6, 7]);
});

s('readFileBytes names what could not be read and why', async () => {
  const missing = join(folder, 'nope.safetensors');
  await userError(readFileBytes(missing, 'weights'), `cannot read weights '${missing}': no such file`);
  await userError(readFileBytes(folder, 'image'), `cannot read image '${folder}': it is a directory`);
  const underFile = join(folder, 'file');
  writeFileSync(underFile, 'x');
  await userError(readFileBytes(join(underFile, 'child'), 'config'), `cannot read config '${join(underFile, 'child')}': no such file`);
});

s('UserError is an Error with its own name', () => {
  const error = new UserError('bad flag');
  assert.instance(error, Error);
  assert.is(error.name, 'UserError');
  assert.is(error.message, 'bad flag');
});

s.run();
