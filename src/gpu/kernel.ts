/**
 * A compute pipeline made from an embedded shader, with an explicit bind-group layout derived
 * from the shader's reflected bindings, and a writer for its `Params` uniform that uses the
 * reflected field offsets.
 */
import type { ShaderSource } from './shader_source.ts';

export type ParamValues = Record<string, number>;

const layoutCache = new WeakMap<GPUDevice, Map<string, GPUBindGroupLayout>>();
const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

function bindGroupLayout(device: GPUDevice, shader: ShaderSource): GPUBindGroupLayout {
  let perDevice = layoutCache.get(device);
  if (!perDevice) layoutCache.set(device, perDevice = new Map());
  let layout = perDevice.get(shader.name);
  if (!layout) {
    layout = device.createBindGroupLayout({
      label: shader.name,
      entries: shader.bindings.map((b, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.kind === 'uniform' ? 'uniform' : b.kind === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    perDevice.set(shader.name, layout);
  }
  return layout;
}

/** One pipeline per shader and device, made asynchronously and shared by every node using it. */
export function computePipeline(device: GPUDevice, shader: ShaderSource): Promise<GPUComputePipeline> {
  let perDevice = pipelineCache.get(device);
  if (!perDevice) pipelineCache.set(device, perDevice = new Map());
  let pipeline = perDevice.get(shader.name);
  if (!pipeline) {
    const module = device.createShaderModule({ label: shader.name, code: shader.code });
    pipeline = device.createComputePipelineAsync({
      label: shader.name,
      layout: device.createPipelineLayout({ label: shader.name, bindGroupLayouts: [bindGroupLayout(device, shader)] }),
      compute: { module, entryPoint: 'main' },
    });
    perDevice.set(shader.name, pipeline);
  }
  return pipeline;
}

export function kernelBindGroupLayout(device: GPUDevice, shader: ShaderSource): GPUBindGroupLayout {
  return bindGroupLayout(device, shader);
}

/** Writes `values` into `target` at `byteOffset` using the shader's reflected Params layout. */
export function writeParams(shader: ShaderSource, values: ParamValues, target: DataView, byteOffset: number, label: string): void {
  const layout = shader.params;
  if (!layout) throw new Error(`${label}: shader ${shader.name} has no params`);
  for (const [field, { offset, type }] of Object.entries(layout.fields)) {
    const value = values[field];
    if (value === undefined || !Number.isFinite(value)) {
      throw new Error(`${label}: param '${field}' of shader ${shader.name} is ${value}`);
    }
    if (type === 'f32') target.setFloat32(byteOffset + offset, value, true);
    else if (type === 'u32') {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new Error(`${label}: param '${field}' = ${value} is not a u32`);
      }
      target.setUint32(byteOffset + offset, value, true);
    } else target.setInt32(byteOffset + offset, value, true);
  }
  for (const field of Object.keys(values)) {
    if (!(field in layout.fields)) throw new Error(`${label}: shader ${shader.name} has no param '${field}'`);
  }
}

export function alignTo(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
