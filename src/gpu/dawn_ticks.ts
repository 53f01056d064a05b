/**
 * Spacing of Dawn's event polling in Node and Deno (the `webgpu` npm package).
 *
 * While a map or a queue wait is pending, Dawn's bindings poll for its completion by calling the
 * global `setImmediate` with a fresh native callback, again and again (crbug.com/dawn/1127): one
 * CPU core stays busy for as long as the GPU works. On a software adapter that core is one of those
 * the "GPU" itself runs on: on two cores, lavapipe's emoji32 forward took 242 ms with the loop and
 * 145 ms with Dawn's ticks 1 ms apart (docs/perf.md). So while a device on a software adapter is
 * alive, the engine hands those ticks to `setTimeout` instead. Nothing else is changed: any other
 * `setImmediate` call goes through as it came.
 */

// deno-lint-ignore no-explicit-any
type Callback = (...args: any[]) => void;

/** Devices on software adapters, alive: the ticks are spaced while there is one. */
const spacedDevices = new Set<GPUDevice>();
let tickMs = 1;
let installed = false;

/**
 * Dawn's tick callback: a native function without a name or parameters, passed alone. A script's
 * arrow function shows its source; a promise's resolve function has one parameter; bound and
 * built-in functions have names.
 */
export function isDawnTick(callback: unknown, extraArgs: number): boolean {
  return typeof callback === 'function' && extraArgs === 0 && callback.name === '' && callback.length === 0 &&
    /\{\s*\[native code\]\s*\}$/.test(Function.prototype.toString.call(callback));
}

function install(): boolean {
  if (installed) return true;
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const immediate = g.setImmediate as ((callback: Callback, ...args: unknown[]) => unknown) | undefined;
  if (typeof immediate !== 'function' || typeof g.setTimeout !== 'function') return false;
  const spaced = function setImmediate(callback: Callback, ...args: unknown[]) {
    if (spacedDevices.size > 0 && isDawnTick(callback, args.length)) return g.setTimeout(callback, tickMs);
    return immediate(callback, ...args);
  };
  // util.promisify's symbol and the like stay as they were.
  for (const key of Reflect.ownKeys(immediate)) {
    if (key === 'name' || key === 'length' || key === 'prototype') continue;
    Object.defineProperty(spaced, key, Object.getOwnPropertyDescriptor(immediate, key)!);
  }
  g.setImmediate = spaced;
  installed = true;
  return true;
}

/**
 * Spaces Dawn's ticks `ms` apart while `device` lives (until it is lost or destroyed). Returns
 * whether the runtime let it (a global `setImmediate` to wrap).
 */
export function spaceDawnTicks(device: GPUDevice, ms = 1): boolean {
  if (!(ms > 0) || !install()) return false;
  tickMs = ms;
  spacedDevices.add(device);
  device.lost.then(() => spacedDevices.delete(device));
  return true;
}

/** Whether Dawn's ticks are spaced now, or for `device`. */
export function dawnTicksSpaced(device?: GPUDevice): boolean {
  return device ? spacedDevices.has(device) : spacedDevices.size > 0;
}
