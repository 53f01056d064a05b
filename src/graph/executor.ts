/**
 * Compiles a Graph once for a device: pipelines, buffers (planned from tensor lifetimes and
 * reused), one uniform buffer holding every node's params, and one bind group per node. A run
 * only records dispatches into a command encoder.
 */
import { type Gpu, unlessLost } from '../gpu/device.ts';
import { alignTo, computePipeline, kernelBindGroupLayout, writeParams } from '../gpu/kernel.ts';
import { SHADERS } from '../shaders.gen.ts';
import { byteSize, type Graph, type GraphNode } from './graph.ts';

/** Raised for a graph that the device cannot run; names the node and the numbers. */
export class GraphLimitError extends Error {
  override name = 'GraphLimitError';
}

export interface BufferPlan {
  /** Planned slot of each intermediate tensor (by tensor id). */
  slotOf: Map<number, number>;
  /** Byte size of each slot. */
  slotSizes: number[];
}

/**
 * Assigns intermediate tensors to reusable slots: a tensor takes a slot from its producing node
 * until its last reader; a node's outputs are placed before its inputs' slots are released, so
 * no dispatch binds one buffer as both input and output.
 */
export function planBuffers(graph: Graph): BufferPlan {
  const lastUse = new Map<number, number>();
  graph.nodes.forEach((node, index) => {
    for (const t of [...node.inputs, ...node.outputs]) if (t && t.role === 'intermediate') lastUse.set(t.id, index);
  });
  const slotOf = new Map<number, number>();
  const slotSizes: number[] = [];
  const free: number[] = [];
  graph.nodes.forEach((node, index) => {
    for (const t of node.outputs) {
      if (t.role !== 'intermediate' || slotOf.has(t.id)) continue;
      const size = byteSize(t);
      // Best fit among free slots; else grow the largest free slot; else a new slot.
      let pick = -1;
      for (const [i, slot] of free.entries()) {
        if (slotSizes[slot] >= size && (pick === -1 || slotSizes[slot] < slotSizes[free[pick]])) pick = i;
      }
      if (pick === -1 && free.length > 0) {
        pick = free.reduce((best, slot, i) => (slotSizes[slot] > slotSizes[free[best]] ? i : best), 0);
      }
      let slot: number;
      if (pick === -1) {
        slot = slotSizes.length;
        slotSizes.push(size);
      } else {
        slot = free.splice(pick, 1)[0];
        slotSizes[slot] = Math.max(slotSizes[slot], size);
      }
      slotOf.set(t.id, slot);
    }
    for (const t of [...node.inputs, ...node.outputs]) {
      if (t && t.role === 'intermediate' && lastUse.get(t.id) === index && !free.includes(slotOf.get(t.id)!)) {
        free.push(slotOf.get(t.id)!);
      }
    }
  });
  return { slotOf, slotSizes };
}

interface CompiledNode {
  node: GraphNode;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
}

export interface CompileStats {
  weightBytes: number;
  planned: { slots: number; bytes: number; unplannedBytes: number };
  nodes: number;
}

export class CompiledGraph {
  private constructor(
    readonly gpu: Gpu,
    readonly graph: Graph,
    private readonly nodes: CompiledNode[],
    private readonly tensorBuffers: Map<number, GPUBuffer>,
    private readonly ownedBuffers: GPUBuffer[],
    readonly stats: CompileStats,
  ) {}

  /** Checks every tensor and dispatch against the device's limits before anything is made. */
  static checkLimits(
    graph: Graph,
    limits: Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize' | 'maxComputeWorkgroupsPerDimension'>,
  ): void {
    // Tensors first: a tensor too large to bind is the root cause when a dispatch is also too wide.
    const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    for (const node of graph.nodes) {
      for (const t of [...node.inputs, ...node.outputs]) {
        if (t && byteSize(t) > maxBinding) {
          throw new GraphLimitError(
            `${node.name}: tensor '${t.name}' [${t.shape}] needs ${byteSize(t)} bytes, more than this adapter's ` +
              `storage binding limit of ${maxBinding} bytes; use a smaller batch or image size`,
          );
        }
      }
    }
    const maxGroups = limits.maxComputeWorkgroupsPerDimension;
    for (const node of graph.nodes) {
      if (node.workgroups.some((n) => n > maxGroups)) {
        throw new GraphLimitError(
          `${node.name}: dispatch [${node.workgroups}] exceeds this adapter's maxComputeWorkgroupsPerDimension of ${maxGroups}; use a smaller batch or image size`,
        );
      }
    }
  }

  static async compile(gpu: Gpu, graph: Graph, label = 'graph'): Promise<CompiledGraph> {
    const { device } = gpu;
    const limits = device.limits;
    CompiledGraph.checkLimits(graph, limits);
    const owned: GPUBuffer[] = [];
    const tensorBuffers = new Map<number, GPUBuffer>();
    const createBuffer = (descriptor: GPUBufferDescriptor): GPUBuffer => {
      const buffer = device.createBuffer(descriptor);
      owned.push(buffer);
      return buffer;
    };
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    let scopesOpen = true;
    try {
      let weightBytes = 0;
      let unplannedBytes = 0;
      for (const t of graph.tensors) {
        if (t.role === 'weight') {
          const buffer = createBuffer({
            label: t.name,
            size: alignTo(byteSize(t), 4),
            usage: GPUBufferUsage.STORAGE,
            mappedAtCreation: true,
          });
          new Float32Array(buffer.getMappedRange()).set(t.data!);
          buffer.unmap();
          tensorBuffers.set(t.id, buffer);
          weightBytes += byteSize(t);
        } else if (t.role === 'input' || t.role === 'output') {
          tensorBuffers.set(
            t.id,
            createBuffer({
              label: t.name,
              size: alignTo(byteSize(t), 4),
              usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
            }),
          );
          unplannedBytes += byteSize(t);
        }
      }
      const plan = planBuffers(graph);
      const slots = plan.slotSizes.map((size, i) =>
        createBuffer({ label: `${label}.slot${i}`, size: alignTo(size, 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC })
      );
      for (const [id, slot] of plan.slotOf) tensorBuffers.set(id, slots[slot]);
      // Bound where a shader's optional input is unused.
      const unused = createBuffer({ label: `${label}.unused`, size: 16, usage: GPUBufferUsage.STORAGE });

      const stride = alignTo(
        Math.max(...Object.values(SHADERS).map((s) => s.params?.size ?? 0), 16),
        limits.minUniformBufferOffsetAlignment,
      );
      const uniformBuffer = createBuffer({
        label: `${label}.params`,
        size: Math.max(stride * graph.nodes.length, 16),
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      const uniformView = new DataView(uniformBuffer.getMappedRange());

      const compiled: CompiledNode[] = [];
      const pipelines = await Promise.all(graph.nodes.map((node) => computePipeline(device, SHADERS[node.shader])));
      graph.nodes.forEach((node, index) => {
        const shader = SHADERS[node.shader];
        writeParams(shader, node.params, uniformView, index * stride, node.name);
        const entries: GPUBindGroupEntry[] = [];
        [...node.inputs, ...node.outputs].forEach((t, binding) => {
          if (!t) entries.push({ binding, resource: { buffer: unused } });
          else entries.push({ binding, resource: { buffer: tensorBuffers.get(t.id)!, offset: 0, size: alignTo(byteSize(t), 4) } });
        });
        entries.push({ binding: entries.length, resource: { buffer: uniformBuffer, offset: index * stride, size: shader.params!.size } });
        const bindGroup = device.createBindGroup({ label: node.name, layout: kernelBindGroupLayout(device, shader), entries });
        compiled.push({ node, pipeline: pipelines[index], bindGroup });
      });
      uniformBuffer.unmap();

      scopesOpen = false;
      const oom = await device.popErrorScope();
      const invalid = await device.popErrorScope();
      if (oom) throw new GraphLimitError(`compiling ${label}: the GPU ran out of memory (${oom.message}); use a smaller batch`);
      if (invalid) throw new Error(`compiling ${label}: ${invalid.message}`);
      const plannedBytes = plan.slotSizes.reduce((a, b) => a + b, 0);
      return new CompiledGraph(gpu, graph, compiled, tensorBuffers, owned, {
        weightBytes,
        planned: { slots: plan.slotSizes.length, bytes: plannedBytes, unplannedBytes },
        nodes: compiled.length,
      });
    } catch (error) {
      if (scopesOpen) {
        await device.popErrorScope();
        await device.popErrorScope();
      }
      for (const b of owned) b.destroy();
      throw error;
    }
  }

  /** The buffer behind an input or output tensor. */
  buffer(name: string): GPUBuffer {
    const t = this.graph.tensor(name);
    if (t.role !== 'input' && t.role !== 'output') {
      throw new Error(`tensor '${name}' is ${t.role}: only inputs and outputs have their own buffer`);
    }
    return this.tensorBuffers.get(t.id)!;
  }

  write(name: string, data: Float32Array | Int32Array): void {
    const t = this.graph.tensor(name);
    if (data.length !== byteSize(t) / 4) {
      throw new Error(`tensor '${name}' [${t.shape}] takes ${byteSize(t) / 4} values, got ${data.length}`);
    }
    this.gpu.device.queue.writeBuffer(this.buffer(name), 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * Records every node's dispatch. With `timestamps`, each node gets its own compute pass whose
   * begin and end are written to the query set at 2*i and 2*i+1 (for the profiler).
   */
  record(encoder: GPUCommandEncoder, timestamps?: { querySet: GPUQuerySet; firstQuery: number }): void {
    if (!timestamps) {
      const pass = encoder.beginComputePass({ label: this.graph.nodes[0]?.name });
      for (const { node, pipeline, bindGroup } of this.nodes) {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(...node.workgroups);
      }
      pass.end();
      return;
    }
    this.nodes.forEach(({ node, pipeline, bindGroup }, i) => {
      const pass = encoder.beginComputePass({
        label: node.name,
        timestampWrites: {
          querySet: timestamps.querySet,
          beginningOfPassWriteIndex: timestamps.firstQuery + 2 * i,
          endOfPassWriteIndex: timestamps.firstQuery + 2 * i + 1,
        },
      });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...node.workgroups);
      pass.end();
    });
  }

  /** Records node i alone in its own pass (the profiler's fallback without timestamp queries). */
  recordNode(encoder: GPUCommandEncoder, index: number): void {
    const { node, pipeline, bindGroup } = this.nodes[index];
    const pass = encoder.beginComputePass({ label: node.name });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...node.workgroups);
    pass.end();
  }

  get nodeList(): readonly GraphNode[] {
    return this.graph.nodes;
  }

  async run(): Promise<void> {
    const encoder = this.gpu.device.createCommandEncoder({ label: 'run' });
    this.record(encoder);
    this.gpu.device.queue.submit([encoder.finish()]);
    await unlessLost(this.gpu.device, this.gpu.device.queue.onSubmittedWorkDone());
  }

  /** Copies an input or output tensor back to the CPU. */
  async read(name: string): Promise<Float32Array> {
    const t = this.graph.tensor(name);
    return readBuffer(this.gpu.device, this.buffer(name), byteSize(t));
  }

  destroy(): void {
    for (const b of this.ownedBuffers) b.destroy();
    this.ownedBuffers.length = 0;
  }
}

export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes: number, offset = 0): Promise<Float32Array> {
  const staging = device.createBuffer({
    label: `read ${buffer.label}`,
    size: alignTo(bytes, 4),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder({ label: `read ${buffer.label}` });
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, alignTo(bytes, 4));
  device.queue.submit([encoder.finish()]);
  try {
    await unlessLost(device, staging.mapAsync(GPUMapMode.READ));
    return new Float32Array(staging.getMappedRange().slice(0, bytes));
  } finally {
    staging.destroy();
  }
}
