/** What an adapter says of itself, for the layers above that choose kernels by it. */
/** What the adapter says of itself, lower case: vendor, architecture, device, description. */
export function adapterText(adapter: GPUAdapter): string {
  const info = adapter.info;
  return `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
}

/**
 * Whether the adapter runs on the CPU (a software driver): llvmpipe/lavapipe, SwiftShader, or
 * whatever calls itself a fallback or software adapter. (It does not import the ops, so that the
 * device code can ask it.)
 */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  // adapter.info.isFallbackAdapter is recent; older implementations only describe themselves.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return !!info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/.test(adapterText(adapter));
}
