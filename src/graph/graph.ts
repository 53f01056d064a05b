/**
 * The graph a model compiles to: tensors and the nodes (one shader dispatch each) that read and
 * write them. Node names are the PyTorch module paths they come from, and every GPU object made
 * for a node carries that name as its label.
 */
import { type DispatchSize, GUARANTEED_WORKGROUPS_PER_DIMENSION, workgroupGrid, type Workgroups } from '../gpu/kernel.ts';
import { type Precision, shaderFor, type ShaderSource } from '../gpu/shader_source.ts';
import { type ShaderName, SHADERS } from '../shaders.gen.ts';

export type TensorRole = 'weight' | 'input' | 'intermediate' | 'output';
export type DataType = 'f32' | 'f16' | 'i32';

const BYTES_PER_ELEMENT: Record<DataType, number> = { f32: 4, f16: 2, i32: 4 };

export interface Tensor {
  id: number;
  name: string;
  shape: number[];
  dtype: DataType;
  role: TensorRole;
  /**
   * Weights only: the values to upload, already in the layout the shader expects (rounded to f16
   * on upload for an f16 weight). Computed when the weight is first uploaded to a device (graphs
   * are built per batch size; uploads are not).
   */
  values?: () => Float32Array;
}

export interface GraphNode {
  name: string;
  /** The op kind, for profiles: 'conv2d', 'group_norm', ... */
  kind: string;
  shader: ShaderName;
  /** The shader as this graph runs it (its f16 variant in an f16 graph: shaderFor); set by addNode. */
  source: ShaderSource;
  /** One per shader binding before the outputs; null binds an unused optional input. */
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  params: Record<string, number>;
  /** The invocations the dispatch needs; its workgroups follow from the shader's @workgroup_size. */
  dispatch: DispatchSize;
  /** The workgroup grid (set by addNode), valid on every adapter's dimension limit. */
  workgroups: Workgroups;
  /** Counted floating-point operations and bytes moved, for GFLOP/s and GB/s figures. */
  flops: number;
  bytes: number;
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function bytesPerElement(dtype: DataType): number {
  return BYTES_PER_ELEMENT[dtype];
}

export function byteSize(t: Tensor): number {
  return elementCount(t.shape) * BYTES_PER_ELEMENT[t.dtype];
}

export class Graph {
  readonly tensors: Tensor[] = [];
  readonly nodes: GraphNode[] = [];
  private readonly byName = new Map<string, Tensor>();

  /** The dtype of every intermediate unless told otherwise, and of the small weights (biases, norms). */
  readonly activationType: 'f32' | 'f16';
  /**
   * The dtype of the large weights, those the shaders bind as `weight_t` (conv, linear, embedding
   * tables): f16 at 'f16' and 'f16-packed' (where the shaders read them as f16 pairs in u32 words).
   */
  readonly weightType: 'f32' | 'f16';

  constructor(readonly precision: Precision = 'f32') {
    this.activationType = precision === 'f16' ? 'f16' : 'f32';
    this.weightType = precision === 'f32' ? 'f32' : 'f16';
  }

  private add(name: string, shape: number[], dtype: DataType, role: TensorRole, values?: () => Float32Array): Tensor {
    if (this.byName.has(name)) throw new Error(`graph: tensor name '${name}' is used twice`);
    const checked = values && (() => {
      const data = values();
      if (data.length !== elementCount(shape)) throw new Error(`graph: weight '${name}' has ${data.length} values for shape [${shape}]`);
      return data;
    });
    const tensor: Tensor = { id: this.tensors.length, name, shape, dtype, role, values: checked };
    this.tensors.push(tensor);
    this.byName.set(name, tensor);
    return tensor;
  }

  /**
   * A weight; `data` may be a function, called only when the weight is uploaded. Stored as the
   * activations are unless `dtype` says otherwise: the graph's `weightType` for a large weight,
   * f32 for values a shader needs exact, whatever the precision.
   */
  weight(name: string, shape: number[], data: Float32Array | (() => Float32Array), dtype: DataType = this.activationType): Tensor {
    return this.add(name, shape, dtype, 'weight', typeof data === 'function' ? data : () => data);
  }

  /** A tensor the host writes: f32 unless told otherwise, whatever the precision. */
  input(name: string, shape: number[], dtype: DataType = 'f32'): Tensor {
    return this.add(name, shape, dtype, 'input');
  }

  intermediate(name: string, shape: number[], dtype: DataType = this.activationType): Tensor {
    return this.add(name, shape, dtype, 'intermediate');
  }

  /** Keeps a tensor in its own buffer after a run so it can be read back. */
  markOutput(tensor: Tensor): Tensor {
    if (tensor.role === 'intermediate') tensor.role = 'output';
    return tensor;
  }

  /** Makes `name` refer to an existing tensor (a block whose output is its last module's). */
  alias(name: string, tensor: Tensor): void {
    if (this.byName.has(name)) throw new Error(`graph: tensor name '${name}' is used twice`);
    this.byName.set(name, tensor);
  }

  tensor(name: string): Tensor {
    const t = this.byName.get(name);
    if (!t) throw new Error(`graph: no tensor named '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  addNode(spec: Omit<GraphNode, 'workgroups' | 'source'>): void {
    const shader = shaderFor(SHADERS[spec.shader], this.precision);
    const node: GraphNode = {
      ...spec,
      source: shader,
      workgroups: workgroupGrid(shader, spec.dispatch, GUARANTEED_WORKGROUPS_PER_DIMENSION),
    };
    const inputSlots = shader.bindings.filter((b) => b.kind === 'read' || b.kind === 'read_uniform').length;
    const outputSlots = shader.bindings.filter((b) => b.kind === 'read_write').length;
    if (node.inputs.length !== inputSlots || node.outputs.length !== outputSlots) {
      throw new Error(
        `graph: node '${node.name}' binds ${node.inputs.length} inputs and ${node.outputs.length} outputs; ` +
          `shader ${node.shader} has ${inputSlots} and ${outputSlots}`,
      );
    }
    [...node.inputs, ...node.outputs].forEach((t, i) => {
      const binding = shader.bindings[i];
      const holds = binding.element === 'act' ? this.activationType : binding.element === 'weight' ? this.weightType : binding.element;
      if (t && binding.element !== 'u32' && t.dtype !== holds) {
        throw new Error(
          `graph: node '${node.name}' binds ${t.dtype} tensor '${t.name}' to ${shader.name}'s '${binding.name}', which holds ${holds}`,
        );
      }
    });
    this.nodes.push(node);
  }
}
