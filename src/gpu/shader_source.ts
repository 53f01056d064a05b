/** A WGSL shader as embedded by scripts/embed-shaders.mjs, with what reflection found in it. */
export interface ShaderSource {
  name: string;
  /** Where it comes from, from the project root (shaders/<folder>/<name>.wgsl). */
  file: string;
  /** The WGSL, with its includes pasted in. */
  code: string;
  /**
   * In binding order: inputs ('read' storage, or 'read_uniform' for an input bound as a uniform
   * buffer), outputs ('read_write'), then the params 'uniform'.
   */
  bindings: { name: string; kind: 'read' | 'read_uniform' | 'read_write' | 'uniform' }[];
  /** Byte layout of the `Params` uniform struct, or null when the shader has none. */
  params: { size: number; fields: Record<string, { offset: number; type: 'u32' | 'i32' | 'f32' }> } | null;
  workgroupSize: number[];
}
