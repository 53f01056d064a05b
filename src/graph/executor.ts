/**
 * Compiles a Graph once for a device: kernels, buffers (planned from tensor lifetimes and
 * reused), one uniform buffer holding every node's params, and one bind group per node. A run
 * only records dispatches into a command encoder. Weights live in a `DeviceWeights` that graphs
 * of the same model (one per batch size) share.
 */
import type { Gpu } from '../gpu/device.ts';
import { alignTo, type CompileProgressCallback, countPrograms, type Kernel, loadKernels, ParamsBuffer } from '../gpu/kernel.ts';
import { Readback, type RecordableGraph, Recorder } from '../gpu/recorder.ts';
import { SHADERS } from '../shaders.gen.ts';
import {
  checkMemoryBudget,
  countHeld,
  GpuAllocationError,
  heldMemory,
  type MemoryNeed,
  ModelTooLargeError,
  outOfMemoryError,
} from '../gpu/memory_budget.ts';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../io/half.ts';
import { byteSize, elementCount, type Graph, type GraphNode, type Tensor } from './graph.ts';

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
  kernel: Kernel;
  bindGroup: GPUBindGroup;
}

export interface CompileStats {
  weightBytes: number;
  planned: { slots: number; bytes: number; unplannedBytes: number };
  /** Every buffer the graph owns, as allocated: the planned slots, inputs, outputs and the params. */
  bufferBytes: number;
  /** The largest tensor a node binds as storage (weights included): what the binding limit must hold. */
  largestBindingBytes: number;
  nodes: number;
  /** Distinct programs (pipelines) among the nodes. */
  programs: number;
}

/** What a model holds on the GPU, in bytes. */
export interface GpuMemory {
  /** The weights, each uploaded once however many graphs share them. */
  weightBytes: number;
  /** The graphs' own buffers: activations (planned slots), inputs, outputs and params. */
  activationBytes: number;
  /** The largest tensor any of the graphs binds as storage. */
  largestBindingBytes: number;
}

/** The GPU memory of these graphs together: shared weights counted once. */
export function graphsMemory(graphs: Iterable<CompiledGraph>): GpuMemory {
  const weights = new Set<DeviceWeights>();
  let activationBytes = 0;
  let largestBindingBytes = 0;
  for (const graph of graphs) {
    weights.add(graph.deviceWeights);
    activationBytes += graph.stats.bufferBytes;
    largestBindingBytes = Math.max(largestBindingBytes, graph.stats.largestBindingBytes);
  }
  return { weightBytes: [...weights].reduce((n, w) => n + w.bytes, 0), activationBytes, largestBindingBytes };
}

export interface CompileOptions {
  label?: string;
  /** The model's weights on this device, shared with its other graphs (a graph of its own otherwise). */
  weights?: DeviceWeights;
  /** Limits stricter than the device's. */
  limits?: GraphLimits;
  /** Called with `{ compiled: 0, total }`, then as each of the graph's distinct programs is ready. */
  onProgress?: CompileProgressCallback;
}

/** Weights uploaded between waits for the queue (see CompiledGraph.compile). */
const UPLOAD_BYTES_PER_WAIT = 128 * 2 ** 20;

export type GraphLimits = Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize' | 'maxComputeWorkgroupsPerDimension'>;

/**
 * A model's weights on one device, uploaded the first time a graph asks for them and shared by
 * every graph compiled from that model. Freed when its last user releases it.
 */
export class DeviceWeights {
  private readonly buffers = new Map<string, GPUBuffer>();
  private users = 0;
  /** Bytes written to the device so far (a counter: it does not fall when the weights are freed). */
  uploadedBytes = 0;
  /** Of the buffers held, those of weights stored as f32 (what precision f16 would halve). */
  private f32Bytes = 0;

  constructor(readonly device: GPUDevice, private readonly onFreed?: () => void) {}

  /** The buffer of weight tensor `t`, uploading its values the first time. */
  buffer(t: Tensor): GPUBuffer {
    let buffer = this.buffers.get(t.name);
    if (buffer) {
      if (buffer.size !== alignTo(byteSize(t), 4)) throw new Error(`weight '${t.name}' [${t.shape}] does not match its uploaded buffer`);
      return buffer;
    }
    const size = alignTo(byteSize(t), 4);
    // Uniform too: the register convs bind 64 KiB windows of their weights as uniform buffers.
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM;
    try {
      buffer = this.device.createBuffer({ label: t.name, size, usage, mappedAtCreation: true });
    } catch (error) {
      if (error instanceof RangeError) throw new GpuAllocationError(`weight '${t.name}' (${size} bytes): ${error.message}`);
      throw error;
    }
    if (t.dtype === 'f32') this.f32Bytes += size;
    countHeld(this.device, size, t.dtype === 'f32' ? size : 0);
    const values = t.values!();
    if (t.dtype === 'f16') new Uint16Array(buffer.getMappedRange(), 0, values.length).set(float32ArrayToFloat16(values));
    else new Float32Array(buffer.getMappedRange()).set(values);
    buffer.unmap();
    this.buffers.set(t.name, buffer);
    this.uploadedBytes += size;
    return buffer;
  }

  /** Whether weight `name` is on the device already. */
  has(name: string): boolean {
    return this.buffers.has(name);
  }

  get bytes(): number {
    let total = 0;
    for (const b of this.buffers.values()) total += b.size;
    return total;
  }

  retain(): this {
    this.users++;
    return this;
  }

  release(): void {
    if (--this.users > 0) return;
    for (const b of this.buffers.values()) b.destroy();
    countHeld(this.device, -this.bytes, -this.f32Bytes);
    this.f32Bytes = 0;
    this.buffers.clear();
    this.onFreed?.();
  }
}

export class CompiledGraph implements RecordableGraph {
  private released = false;

  private constructor(
    readonly gpu: Gpu,
    readonly graph: Graph,
    readonly label: string,
    private readonly nodes: CompiledNode[],
    private readonly tensorBuffers: Map<number, GPUBuffer>,
    private readonly ownedBuffers: { destroy(): void }[],
    private readonly weights: DeviceWeights,
    readonly stats: CompileStats,
  ) {}

  /** Checks every tensor and dispatch against the device's limits before anything is made. */
  static checkLimits(graph: Graph, limits: GraphLimits): void {
    // Tensors first: a tensor too large to bind is the root cause when a dispatch is also too wide.
    const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    for (const node of graph.nodes) {
      const bindings = node.source.bindings;
      for (const [i, t] of [...node.inputs, ...node.outputs].entries()) {
        // A uniform input (a 64 KiB window of weights) is sized to WebGPU's guaranteed uniform limit.
        if (t && bindings[i].kind !== 'read_uniform' && byteSize(t) > maxBinding) {
          throw new GraphLimitError(
            `${node.name}: tensor '${t.name}' [${t.shape}] needs ${byteSize(t)} bytes, more than this adapter's ` +
              `storage binding limit of ${maxBinding} bytes; use a smaller batch or image size`,
          );
        }
      }
    }
    // A weight bound only in uniform windows is still one buffer, which maxBufferSize bounds.
    for (const t of graph.tensors) {
      if (byteSize(t) > limits.maxBufferSize) {
        throw new GraphLimitError(
          `tensor '${t.name}' [${t.shape}] needs ${
            byteSize(t)
          } bytes, more than this adapter's buffer size limit of ${limits.maxBufferSize} bytes`,
        );
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

  /**
   * What compiling `graph` would allocate beside what the device holds, counted without allocating
   * anything (weights already in `weights` count nothing): for a budget check ahead of a long run.
   */
  static plannedNeed(gpu: Gpu, graph: Graph, options: { label: string; weights?: DeviceWeights }): MemoryNeed {
    return memoryNeed(gpu.device, options.label, graph, planBuffers(graph), options.weights ?? new DeviceWeights(gpu.device));
  }

  /**
   * Compiles `graph` on the device: buffers, params, bind groups, and each distinct program made
   * and run once (`loadKernels`), so that the first run compiles nothing.
   */
  static async compile(
    gpu: Gpu,
    graph: Graph,
    options: CompileOptions = {},
  ): Promise<CompiledGraph> {
    const { device } = gpu;
    const label = options.label ?? 'graph';
    CompiledGraph.checkLimits(graph, options.limits ?? device.limits);
    const weights = options.weights ?? new DeviceWeights(device);
    const plan = planBuffers(graph);
    const need = memoryNeed(device, label, graph, plan, weights);
    const heldBefore = { ...heldMemory(device) };
    checkMemoryBudget(gpu, need, heldBefore);
    weights.retain();
    const owned: { destroy(): void }[] = [];
    const tensorBuffers = new Map<number, GPUBuffer>();
    let ownedBytes = 0;
    // What this graph's buffers add to the device's count (src/gpu/memory_budget.ts), params included.
    let heldBytes = 0;
    const hold = (bytes: number) => {
      heldBytes += bytes;
      countHeld(device, bytes);
    };
    const createBuffer = (descriptor: GPUBufferDescriptor): GPUBuffer => {
      const buffer = device.createBuffer(descriptor);
      owned.push(buffer);
      ownedBytes += buffer.size;
      hold(buffer.size);
      return buffer;
    };
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    let scopesOpen = true;
    try {
      let weightBytes = 0;
      let unplannedBytes = 0;
      let uploadedAtLastWait = weights.uploadedBytes;
      for (const t of graph.tensors) {
        if (t.role === 'weight') {
          tensorBuffers.set(t.id, weights.buffer(t));
          // On the GPU now: the graph keeps no host copy, nor the f32 values its layout was made from,
          // so that a model streams to the device tensor by tensor.
          delete t.values;
          weightBytes += byteSize(t);
          // The driver stages each upload in host memory until the queue has copied it: waiting
          // now and then keeps those copies to a bounded amount rather than the whole model.
          if (weights.uploadedBytes - uploadedAtLastWait >= UPLOAD_BYTES_PER_WAIT) {
            await device.queue.onSubmittedWorkDone();
            uploadedAtLastWait = weights.uploadedBytes;
          }
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
      const slots = plan.slotSizes.map((size, i) =>
        createBuffer({ label: `${label}.slot${i}`, size: alignTo(size, 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC })
      );
      for (const [id, slot] of plan.slotOf) tensorBuffers.set(id, slots[slot]);
      // Bound where a shader's optional input is unused.
      const unused = createBuffer({ label: `${label}.unused`, size: 16, usage: GPUBufferUsage.STORAGE });

      const params = new ParamsBuffer(device, `${label}.params`, Object.values(SHADERS), graph.nodes.length);
      owned.push(params);
      hold(params.buffer.size);
      graph.nodes.forEach((node, index) => params.set(index, node.source, node.params, node.name));
      // Uploaded before the kernels' first runs, which read them.
      params.upload();
      const bind = (kernel: Kernel, index: number): GPUBindGroup => {
        const node = graph.nodes[index];
        const shader = kernel.shader;
        const resources: Record<string, GPUBufferBinding> = {};
        [...node.inputs, ...node.outputs].forEach((t, binding) => {
          resources[shader.bindings[binding].name] = t
            ? { buffer: tensorBuffers.get(t.id)!, offset: 0, size: alignTo(byteSize(t), 4) }
            : { buffer: unused };
        });
        resources[shader.bindings[shader.bindings.length - 1].name] = params.binding(index, shader);
        return kernel.bind(node.name, resources);
      };
      // Each program's first run is its node's dispatch (one workgroup) on this graph's own
      // buffers: it writes only intermediates and outputs, which any run writes again first.
      // Made here, for this compile only: a device of its own costs little beside what it saves.
      const helperDevice = await gpu.compileHelper?.().catch(() => undefined);
      const helper = helperDevice && { device: helperDevice, params: (index: number) => graph.nodes[index].params };
      let kernels: Kernel[];
      try {
        kernels = await loadKernels(device, graph.nodes.map((node) => node.source), bind, options.onProgress, helper);
      } finally {
        helperDevice?.destroy();
      }
      const compiled = graph.nodes.map((node, index): CompiledNode => ({
        node,
        kernel: kernels[index],
        bindGroup: bind(kernels[index], index),
      }));
      scopesOpen = false;
      const oom = await device.popErrorScope();
      const invalid = await device.popErrorScope();
      if (oom) throw outOfMemoryError(gpu, need, heldBefore, oom.message);
      if (invalid) throw new Error(`compiling ${label}: ${invalid.message}`);
      const plannedBytes = plan.slotSizes.reduce((a, b) => a + b, 0);
      let largestBindingBytes = 0;
      for (const node of graph.nodes) {
        [...node.inputs, ...node.outputs].forEach((t, i) => {
          if (t && node.source.bindings[i].kind !== 'read_uniform') largestBindingBytes = Math.max(largestBindingBytes, byteSize(t));
        });
      }
      return new CompiledGraph(gpu, graph, label, compiled, tensorBuffers, owned, weights, {
        weightBytes,
        planned: { slots: plan.slotSizes.length, bytes: plannedBytes, unplannedBytes },
        bufferBytes: ownedBytes + params.buffer.size,
        largestBindingBytes,
        nodes: compiled.length,
        programs: countPrograms(graph.nodes.map((node) => node.source)),
      });
    } catch (error) {
      let thrown = error;
      if (scopesOpen) {
        const oom = await device.popErrorScope();
        await device.popErrorScope();
        if (oom && !(error instanceof ModelTooLargeError)) thrown = outOfMemoryError(gpu, need, heldBefore, oom.message);
      }
      if (error instanceof GpuAllocationError) thrown = outOfMemoryError(gpu, need, heldBefore, error.message);
      for (const b of owned) b.destroy();
      countHeld(device, -heldBytes);
      weights.release();
      throw thrown;
    }
  }

  /** The weights this graph reads, shared with the other graphs of its model on this device. */
  get deviceWeights(): DeviceWeights {
    return this.weights;
  }

  /** This graph's GPU memory: its weights (shared with its model's other graphs) and its own buffers. */
  get memory(): GpuMemory {
    return graphsMemory([this]);
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
    if (t.dtype === 'f16') throw new Error(`tensor '${name}' is f16: the host writes f32 and i32 tensors only`);
    if (data.length !== elementCount(t.shape)) {
      throw new Error(`tensor '${name}' [${t.shape}] takes ${elementCount(t.shape)} values, got ${data.length}`);
    }
    this.gpu.device.queue.writeBuffer(this.buffer(name), 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * Records every node's dispatch. With `timestamps`, each node gets its own compute pass whose
   * begin and end are written to the query set at 2*i and 2*i+1 (for the profiler).
   */
  record(encoder: GPUCommandEncoder, recorder: Recorder, timestamps?: { querySet: GPUQuerySet; firstQuery: number }): void {
    if (!timestamps) {
      const pass = recorder.pass(encoder, this.label);
      for (const { node, kernel, bindGroup } of this.nodes) recorder.dispatch(pass, kernel, bindGroup, node.workgroups);
      pass.end();
      return;
    }
    this.nodes.forEach(({ node, kernel, bindGroup }, i) => {
      const pass = recorder.pass(encoder, node.name, {
        querySet: timestamps.querySet,
        beginningOfPassWriteIndex: timestamps.firstQuery + 2 * i,
        endOfPassWriteIndex: timestamps.firstQuery + 2 * i + 1,
      });
      recorder.dispatch(pass, kernel, bindGroup, node.workgroups);
      pass.end();
    });
  }

  /** Records node i alone in its own pass (the profiler's fallback without timestamp queries). */
  recordNode(encoder: GPUCommandEncoder, recorder: Recorder, index: number): void {
    const { node, kernel, bindGroup } = this.nodes[index];
    recorder.dispatchAlone(encoder, node.name, kernel, bindGroup, node.workgroups);
  }

  get nodeList(): readonly GraphNode[] {
    return this.graph.nodes;
  }

  /** Runs the graph once (through `recorder`, which may hold observers) and waits for it. */
  async run(recorder: Recorder = new Recorder(this.gpu.device)): Promise<void> {
    const encoder = recorder.encoder(this.label);
    recorder.graph(encoder, this);
    recorder.submit(encoder);
    await recorder.afterSubmit();
    await recorder.done();
  }

  /** Copies an input or output tensor back to the CPU (through `readback` when given), f16 as f32. */
  async read(name: string, readback?: Readback): Promise<Float32Array> {
    const t = this.graph.tensor(name);
    const bytes = readback
      ? await readback.readBytes(new Recorder(this.gpu.device), this.buffer(name), byteSize(t))
      : await readBufferBytes(this.gpu.device, this.buffer(name), byteSize(t));
    return t.dtype === 'f16' ? float16ArrayToFloat32(new Uint16Array(bytes)) : new Float32Array(bytes);
  }

  /** Frees this graph's buffers and its share of the weights. */
  destroy(): void {
    if (this.released) return;
    this.released = true;
    for (const b of this.ownedBuffers) b.destroy();
    this.ownedBuffers.length = 0;
    countHeld(this.gpu.device, -this.stats.bufferBytes);
    this.weights.release();
  }
}

/** What compiling `graph` will allocate: the weights `weights` lacks, and the graph's own buffers. */
function memoryNeed(device: GPUDevice, label: string, graph: Graph, plan: BufferPlan, weights: DeviceWeights): MemoryNeed {
  // The params records and the 16 bytes bound for unused inputs are the graph's too.
  const paramsBytes = ParamsBuffer.bytesFor(device, Object.values(SHADERS), graph.nodes.length);
  const need: MemoryNeed = { label, weightBytes: 0, f32WeightBytes: 0, activationBytes: paramsBytes + 16 };
  for (const t of graph.tensors) {
    const size = alignTo(byteSize(t), 4);
    if (t.role === 'weight' && !weights.has(t.name)) {
      need.weightBytes += size;
      if (t.dtype === 'f32') need.f32WeightBytes += size;
    } else if (t.role === 'input' || t.role === 'output') need.activationBytes += size;
  }
  for (const size of plan.slotSizes) need.activationBytes += alignTo(size, 4);
  return need;
}

/** A one-off read of `bytes` of `buffer` through a staging buffer made for it. */
export async function readBufferBytes(device: GPUDevice, buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const readback = new Readback(device, `read ${buffer.label}`, bytes);
  try {
    return await readback.readBytes(new Recorder(device), buffer, bytes, offset);
  } finally {
    readback.destroy();
  }
}

/** readBufferBytes as f32 values. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await readBufferBytes(device, buffer, bytes, offset));
}
