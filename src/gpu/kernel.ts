/**
 * The one way the engine dispatches a shader. A `Kernel` is an embedded shader made ready on a
 * device: its pipeline, a bind-group layout derived from the shader's reflected bindings, bind
 * groups made from buffers named as the shader names them, and the workgroup grid computed from
 * the shader's own `@workgroup_size` and the device's limits. `ParamsBuffer` holds the `Params`
 * uniforms of many dispatches, written at the shader's reflected field offsets.
 */
import { Recorder } from './recorder.ts';
import type { ShaderSource } from './shader_source.ts';

export type ParamValues = Record<string, number>;

/**
 * How many invocations a dispatch needs along each dimension. `flat`: the shader computes one
 * index over x (from `num_workgroups`), so workgroups beyond one dimension's limit fold into y.
 */
export interface DispatchSize {
  invocations: [number, number?, number?];
  flat?: boolean;
}

export type Workgroups = [number, number, number];

/** WebGPU's minimum of maxComputeWorkgroupsPerDimension: flat dispatches fold at this on any adapter. */
export const GUARANTEED_WORKGROUPS_PER_DIMENSION = 65535;

export function alignTo(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** The workgroup grid of `size` for `shader`; may exceed `maxPerDimension`, which the caller checks. */
export function workgroupGrid(shader: ShaderSource, size: DispatchSize, maxPerDimension: number): Workgroups {
  const [wx, wy = 1, wz = 1] = shader.workgroupSize;
  const [x, y = 1, z = 1] = size.invocations;
  if (![x, y, z].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error(`${shader.name}: invocations [${size.invocations}] must be positive integers`);
  }
  const grid: Workgroups = [Math.ceil(x / wx), Math.ceil(y / wy), Math.ceil(z / wz)];
  if (!size.flat) return grid;
  if (y !== 1 || z !== 1) throw new Error(`${shader.name}: a flat dispatch has invocations along x only`);
  const columns = Math.min(grid[0], maxPerDimension, GUARANTEED_WORKGROUPS_PER_DIMENSION);
  return [columns, Math.ceil(grid[0] / columns), 1];
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

/** The device feature each WGSL `enable` extension needs. */
const EXTENSION_FEATURES: Record<string, GPUFeatureName> = { f16: 'shader-f16', subgroups: 'subgroups' };

/** The features the shader's `enable` directives need that `device` does not have. */
export function missingFeatures(shader: ShaderSource, device: GPUDevice): GPUFeatureName[] {
  const needed = [...shader.code.matchAll(/^enable ([\w, ]+);/gm)].flatMap((m) => m[1].split(',').map((e) => e.trim()));
  return needed.map((e) => EXTENSION_FEATURES[e]).filter((f) => f !== undefined && !device.features.has(f));
}

/** How far compiling has got: `compiled` of the `total` distinct programs (pipelines) ready. */
export interface CompileProgress {
  compiled: number;
  total: number;
}

export type CompileProgressCallback = (progress: CompileProgress) => void;

/**
 * One progress over compiles made one after another (a UNet's graph, then its sampler): each
 * part reports its own counts, and `onProgress` hears their sum. A part given its total up front
 * counts in that sum before it starts.
 */
export class CompileProgressSum {
  private readonly parts: CompileProgress[] = [];

  constructor(private readonly onProgress?: CompileProgressCallback) {}

  part(total = 0): CompileProgressCallback {
    const counts = { compiled: 0, total };
    this.parts.push(counts);
    return (progress) => {
      Object.assign(counts, progress);
      const sum = (key: keyof CompileProgress) => this.parts.reduce((n, part) => n + part[key], 0);
      this.onProgress?.({ compiled: sum('compiled'), total: sum('total') });
    };
  }
}

/** A pipeline and its bind-group layout, shared by every shader of the same code and bindings on a device. */
interface Program {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** The program's first run on the device (see `Kernel.warmUp`), once asked for. */
  firstRun?: Promise<void>;
}

const programCache = new WeakMap<GPUDevice, Map<string, Promise<Program>>>();

function bufferType(kind: ShaderSource['bindings'][number]['kind']): GPUBufferBindingType {
  return kind === 'uniform' || kind === 'read_uniform' ? 'uniform' : kind === 'read' ? 'read-only-storage' : 'storage';
}

/** What makes two shaders one program: the same WGSL and the same binding layout (not the name). */
export function programKey(shader: ShaderSource): string {
  return `${shader.bindings.map((b) => bufferType(b.kind)).join(',')}\n${shader.code}`;
}

/** The number of distinct programs among `shaders`. */
export function countPrograms(shaders: Iterable<ShaderSource>): number {
  return new Set([...shaders].map(programKey)).size;
}

function loadProgram(device: GPUDevice, shader: ShaderSource): Promise<Program> {
  let perDevice = programCache.get(device);
  if (!perDevice) programCache.set(device, perDevice = new Map());
  const key = programKey(shader);
  let program = perDevice.get(key);
  if (!program) {
    const layout = device.createBindGroupLayout({
      label: shader.name,
      entries: shader.bindings.map((b, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: bufferType(b.kind) } })),
    });
    const module = device.createShaderModule({ label: shader.name, code: shader.code });
    // Asynchronous, so that a caller can start every pipeline it needs at once and the driver may
    // compile them side by side (createComputePipelineAsync: Dawn, Deno's wgpu, browsers).
    program = device.createComputePipelineAsync({
      label: shader.name,
      layout: device.createPipelineLayout({ label: shader.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    }).then((pipeline) => ({ pipeline, layout }));
    // A failed compile is not cached: the next load tries again.
    program.catch(() => perDevice.delete(key));
    perDevice.set(key, program);
  }
  return program;
}

export class Kernel {
  private constructor(
    readonly device: GPUDevice,
    readonly shader: ShaderSource,
    private readonly program: Program,
  ) {}

  /**
   * The kernel of `shader` on `device`. Its pipeline is made once (asynchronously) per program,
   * shared by every shader of the same code and bindings; see `loadKernels` to make many at once
   * and have each one compiled before it is needed.
   */
  static load(device: GPUDevice, shader: ShaderSource): Promise<Kernel> {
    const missing = missingFeatures(shader, device);
    if (missing.length) {
      return Promise.reject(
        new Error(
          `shader ${shader.name} needs the device feature${missing.length > 1 ? 's' : ''} ${missing.map((f) => `'${f}'`).join(', ')}, ` +
            'which this device lacks (its adapter has none, or the device was made without asking for it)',
        ),
      );
    }
    return loadProgram(device, shader).then((program) => new Kernel(device, shader, program));
  }

  get pipeline(): GPUComputePipeline {
    return this.program.pipeline;
  }

  get layout(): GPUBindGroupLayout {
    return this.program.layout;
  }

  /** Whether this kernel's program has run on its device (or is running: `warmUp` was called). */
  get warmedUp(): boolean {
    return this.program.firstRun !== undefined;
  }

  /**
   * Runs one workgroup of this kernel with `bindGroup`, the first time any kernel of its program
   * is warmed up on the device; resolves when that first run is done. Some drivers compile a
   * pipeline's code only when it first runs: Mesa's llvmpipe (lavapipe) spent ~60 s of a cold
   * `npm run sample` in its first step (docs/perf.md), so compiling a graph runs each program
   * once here instead. `bindGroup`'s outputs are written: give ones that may hold anything yet.
   */
  warmUp(bindGroup: GPUBindGroup): Promise<void> {
    const program = this.program;
    if (!program.firstRun) {
      const recorder = new Recorder(this.device);
      const encoder = recorder.encoder(`${this.name}: first run`);
      recorder.dispatchAlone(encoder, `${this.name}: first run`, this, bindGroup, [1, 1, 1]);
      recorder.submit(encoder);
      program.firstRun = recorder.done();
      // A failed run is not remembered: the next warm-up tries again.
      program.firstRun.catch(() => (program.firstRun = undefined));
    }
    return program.firstRun;
  }

  get name(): string {
    return this.shader.name;
  }

  /**
   * A bind group with every binding of the shader given by its WGSL name (`params` for the
   * uniform); a missing or unknown name is an error naming the shader.
   */
  bind(label: string, resources: Record<string, GPUBuffer | GPUBufferBinding>): GPUBindGroup {
    const names = this.shader.bindings.map((b) => b.name);
    const unknown = Object.keys(resources).filter((k) => !names.includes(k));
    if (unknown.length) throw new Error(`${label}: shader ${this.name} has no binding ${unknown.map((n) => `'${n}'`).join(', ')}`);
    const entries = names.map((name, binding) => {
      const resource = resources[name];
      if (!resource) throw new Error(`${label}: binding '${name}' of shader ${this.name} is not given`);
      return { binding, resource: 'buffer' in resource ? resource : { buffer: resource } };
    });
    return this.device.createBindGroup({ label, layout: this.layout, entries });
  }

  /** The workgroup grid for `size` on this device; throws if a dimension exceeds the device's limit. */
  workgroups(size: DispatchSize, label = this.name): Workgroups {
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    const grid = workgroupGrid(this.shader, size, max);
    if (grid.some((n) => n > max)) {
      throw new Error(`${label}: dispatch [${grid}] exceeds this adapter's maxComputeWorkgroupsPerDimension of ${max}`);
    }
    return grid;
  }
}

/**
 * A second device on the same software driver (Gpu.compileHelper), and the params of each shader's
 * node: llvmpipe generates a program's code at its first run, on the one thread of its device's
 * queue, and keeps it in Mesa's shader cache, where the first device finds it. So the two devices
 * take programs from one list, each compiling on its own core, and the first device then runs the
 * helper's from the cache (docs/perf.md, "The first run"). The helper runs each program once with its node's params, so that its loops are those
 * of the real first run, on small buffers of its own.
 */
export interface CompileHelper {
  device: GPUDevice;
  params(index: number): ParamValues;
}

/** Bytes of each buffer the helper binds: a uniform window of weights (64 KiB) and more than any fixed-size storage array. */
const HELPER_BUFFER_BYTES = 65536;

/** Runs shader's program once on the helper device; resolves when that run is done. */
async function runOnHelper(helper: CompileHelper, shader: ShaderSource, values: ParamValues): Promise<void> {
  const { device } = helper;
  const kernel = await Kernel.load(device, shader);
  const buffers: GPUBuffer[] = [];
  try {
    const resources: Record<string, GPUBuffer> = {};
    shader.bindings.forEach((binding, index) => {
      const isParams = index === shader.bindings.length - 1 && binding.kind === 'uniform' && shader.params;
      const size = isParams ? alignTo(shader.params!.size, 16) : HELPER_BUFFER_BYTES;
      const usage = bufferType(binding.kind) === 'uniform' ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE;
      const buffer = device.createBuffer({ label: `${shader.name}.${binding.name}`, size, usage, mappedAtCreation: !!isParams });
      if (isParams) {
        writeParams(shader, values, new DataView(buffer.getMappedRange()), 0, `${shader.name} (compiled ahead)`);
        buffer.unmap();
      }
      buffers.push(buffer);
      resources[binding.name] = buffer;
    });
    await kernel.warmUp(kernel.bind(`${shader.name}: compiled ahead`, resources));
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

/**
 * The kernels of `shaders` on `device` (one per shader, in order), each program compiled before
 * this resolves: every distinct program's pipeline is asked for at once (createComputePipelineAsync),
 * and each is run once (`Kernel.warmUp`, with the bind group `firstRun` makes for the first of its
 * shaders), so that no driver compiles one later, in the middle of real work; with a `helper`,
 * half of them are compiled on it first. `onProgress` hears `{ compiled: 0, total }` first, then
 * once per program as it is ready.
 */
export async function loadKernels(
  device: GPUDevice,
  shaders: readonly ShaderSource[],
  firstRun: (kernel: Kernel, index: number) => GPUBindGroup,
  onProgress?: CompileProgressCallback,
  helper?: CompileHelper,
): Promise<Kernel[]> {
  const loads = shaders.map((shader) => Kernel.load(device, shader));
  // Failures are reported by the awaits below; the other loads of a failing program are not left unhandled.
  for (const load of loads) load.catch(() => {});
  const firstOf = new Map<string, number>();
  shaders.forEach((shader, index) => {
    const key = programKey(shader);
    if (!firstOf.has(key)) firstOf.set(key, index);
  });
  const total = firstOf.size;
  // Counted once each: when the helper has compiled a program, or else when the device has.
  const done = new Set<number>();
  const report = (index: number) => {
    if (done.has(index)) return;
    done.add(index);
    onProgress?.({ compiled: done.size, total });
  };
  onProgress?.({ compiled: 0, total });
  const warm = async (index: number) => {
    const kernel = await loads[index];
    await kernel.warmUp(firstRun(kernel, index));
    report(index);
  };
  if (!helper) {
    await Promise.all([...firstOf.values()].map(warm));
    return await Promise.all(loads);
  }
  const kernels = await Promise.all(loads);
  // Longest code first, both devices taking the next from the front: the longest programs, which
  // take longest to compile, start at once side by side, and the short ones fill in after.
  const queue = [...firstOf.values()].filter((index) => !kernels[index].warmedUp)
    .sort((a, b) => shaders[b].code.length - shaders[a].code.length);
  const ready = [...firstOf.values()].filter((index) => kernels[index].warmedUp);
  const helped: number[] = [];
  const helping = (async () => {
    while (queue.length) {
      const index = queue.shift()!;
      helped.push(index);
      // A failure there costs only time: the device below compiles the program itself.
      await runOnHelper(helper, shaders[index], helper.params(index)).then(() => report(index), () => {});
    }
  })();
  await Promise.all(ready.map(warm));
  while (queue.length) await warm(queue.shift()!);
  await helping;
  for (const index of helped) await warm(index);
  return kernels;
}

/**
 * The `Params` uniforms of `count` dispatches in one buffer, each record at an offset the device
 * can bind. Values are staged on the CPU (`set`) and sent with `upload`, which may be repeated
 * (queue writes are ordered with submits, so work submitted earlier keeps the old values).
 */
export class ParamsBuffer {
  readonly buffer: GPUBuffer;
  readonly stride: number;
  private readonly staging: DataView;

  constructor(private readonly device: GPUDevice, label: string, shaders: ShaderSource[], readonly count: number) {
    this.stride = ParamsBuffer.strideFor(device, shaders);
    const size = ParamsBuffer.bytesFor(device, shaders, count);
    this.buffer = device.createBuffer({ label, size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.staging = new DataView(new ArrayBuffer(size));
  }

  private static strideFor(device: GPUDevice, shaders: ShaderSource[]): number {
    return alignTo(Math.max(16, ...shaders.map((s) => s.params?.size ?? 0)), device.limits.minUniformBufferOffsetAlignment);
  }

  /** The size of the buffer that `count` records of these shaders' params take (for memory checks before it is made). */
  static bytesFor(device: GPUDevice, shaders: ShaderSource[], count: number): number {
    return Math.max(ParamsBuffer.strideFor(device, shaders) * count, 16);
  }

  set(index: number, shader: ShaderSource, values: ParamValues, label = shader.name): void {
    if (!(index >= 0 && index < this.count)) throw new Error(`${label}: params record ${index} of ${this.count}`);
    writeParams(shader, values, this.staging, index * this.stride, label);
  }

  upload(): void {
    this.device.queue.writeBuffer(this.buffer, 0, this.staging.buffer);
  }

  /** Record `index` as the `params` binding of `shader`. */
  binding(index: number, shader: ShaderSource): GPUBufferBinding {
    return { buffer: this.buffer, offset: index * this.stride, size: shader.params!.size };
  }

  destroy(): void {
    this.buffer.destroy();
  }
}
