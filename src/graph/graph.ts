/**
 * The graph a model compiles to: tensors and the nodes (one shader dispatch each) that read and
 * write them. Node names are the PyTorch module paths they come from, and every GPU object made
 * for a node carries that name as its label.
 */
import { type ShaderName, SHADERS } from '../shaders.gen.ts';

export type TensorRole = 'weight' | 'input' | 'intermediate' | 'output';
export type DataType = 'f32' | 'i32';

export interface Tensor {
  id: number;
  name: string;
  shape: number[];
  dtype: DataType;
  role: TensorRole;
  /** Weights only: the values to upload, already in the layout the shader expects. */
  data?: Float32Array;
}

export interface GraphNode {
  name: string;
  /** The op kind, for profiles: 'conv2d', 'group_norm', ... */
  kind: string;
  shader: ShaderName;
  /** One per shader binding before the outputs; null binds an unused optional input. */
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  params: Record<string, number>;
  workgroups: [number, number, number];
  /** Counted floating-point operations and bytes moved, for GFLOP/s and GB/s figures. */
  flops: number;
  bytes: number;
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function byteSize(t: Tensor): number {
  return elementCount(t.shape) * 4;
}

export class Graph {
  readonly tensors: Tensor[] = [];
  readonly nodes: GraphNode[] = [];
  private readonly byName = new Map<string, Tensor>();

  private add(name: string, shape: number[], dtype: DataType, role: TensorRole, data?: Float32Array): Tensor {
    if (this.byName.has(name)) throw new Error(`graph: tensor name '${name}' is used twice`);
    if (data && data.length !== elementCount(shape)) {
      throw new Error(`graph: weight '${name}' has ${data.length} values for shape [${shape}]`);
    }
    const tensor: Tensor = { id: this.tensors.length, name, shape, dtype, role, data };
    this.tensors.push(tensor);
    this.byName.set(name, tensor);
    return tensor;
  }

  weight(name: string, shape: number[], data: Float32Array): Tensor {
    return this.add(name, shape, 'f32', 'weight', data);
  }

  input(name: string, shape: number[], dtype: DataType = 'f32'): Tensor {
    return this.add(name, shape, dtype, 'input');
  }

  intermediate(name: string, shape: number[], dtype: DataType = 'f32'): Tensor {
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

  addNode(node: GraphNode): void {
    const shader = SHADERS[node.shader];
    const inputSlots = shader.bindings.filter((b) => b.kind === 'read').length;
    const outputSlots = shader.bindings.filter((b) => b.kind === 'read_write').length;
    if (node.inputs.length !== inputSlots || node.outputs.length !== outputSlots) {
      throw new Error(
        `graph: node '${node.name}' binds ${node.inputs.length} inputs and ${node.outputs.length} outputs; ` +
          `shader ${node.shader} has ${inputSlots} and ${outputSlots}`,
      );
    }
    this.nodes.push(node);
  }
}
