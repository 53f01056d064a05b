/**
 * DDIM_KERNELS=<family> (one of KERNEL_FAMILIES: registers, registers-storage, tiled, tiled-wide,
 * tiled-wide-subgroups) makes the golden tests compile the UNet with that conv kernel family instead
 * of the adapter's preferred one, so the GPU kit checks each on a real card.
 */
import { type ConvKernels, KERNEL_FAMILIES } from '../../src/ops/conv2d.ts';

export function kernelsFromEnv(): ConvKernels | undefined {
  const value = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.DDIM_KERNELS;
  if (value === undefined || value === '') return undefined;
  const family = KERNEL_FAMILIES.find((k) => k === value);
  if (!family) throw new Error(`DDIM_KERNELS takes ${KERNEL_FAMILIES.join(', ')}, got ${value}`);
  return family;
}

/** ' (kernels: tiled)' when the environment picks a family, for the adapter line the tests print. */
export function kernelsNote(): string {
  const kernels = kernelsFromEnv();
  return kernels ? ` (kernels: ${kernels}, from DDIM_KERNELS)` : '';
}
