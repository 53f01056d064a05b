/**
 * Reading a component's config.json: each value checked for its type, diffusers' (or
 * transformers') default where the file leaves it out, and a refusal that names the file and key.
 */

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

export type RawConfig = Record<string, unknown>;

export function isPositiveInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/** `key` as a positive integer, `fallback` when absent (or null). */
export function positiveInt(c: RawConfig, key: string, fallback?: number, where = 'config.json'): number {
  const value = c[key] ?? fallback;
  if (!isPositiveInt(value)) throw new ModelConfigError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/** `key` as true or false, `fallback` when absent (or null). */
export function flag(c: RawConfig, key: string, fallback: boolean, where = 'config.json'): boolean {
  const value = c[key] ?? fallback;
  if (typeof value !== 'boolean') throw new ModelConfigError(`${where}: '${key}' must be true or false, got ${JSON.stringify(value)}`);
  return value;
}
