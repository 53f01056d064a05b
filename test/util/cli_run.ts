/** Running the command line in-process for tests, and the safetensors files they pass it. */
import { readFileSync, writeFileSync } from 'node:fs';
import { main } from '../../src/cli/main.ts';
import { parseSafetensors, serializeSafetensors, toFloat32, toInt32 } from '../../src/io/safetensors.ts';

/** main() with captured output (plain progress lines, none of them within a test's time). */
export async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: (t: string) => void (stdout += t),
    stderr: (t: string) => void (stderr += t),
    isTTY: false,
    plainProgressMs: 3_600_000,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/** Tensor `key` of a safetensors file as float32 (integer tensors converted). */
export function tensor(path: string, key: string): Float32Array {
  const entry = parseSafetensors(new Uint8Array(readFileSync(path))).tensors.get(key);
  if (!entry) throw new Error(`${path} has no ${key}`);
  return entry.dtype === 'I32' ? Float32Array.from(toInt32(entry)) : toFloat32(entry);
}

/** A safetensors file of F32 (and I32) tensors. */
export function writeTensors(path: string, tensors: Record<string, { data: Float32Array | Int32Array; shape: number[] }>): void {
  const out: Parameters<typeof serializeSafetensors>[0] = {};
  for (const [key, t] of Object.entries(tensors)) {
    out[key] = { dtype: t.data instanceof Int32Array ? 'I32' : 'F32', shape: t.shape, data: t.data };
  }
  writeFileSync(path, serializeSafetensors(out));
}
