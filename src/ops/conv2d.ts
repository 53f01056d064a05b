import { byteSize, bytesPerElement, type DataType, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import { adapterText, isSoftwareAdapter } from '../gpu/adapter.ts';
import { missingFeatures } from '../gpu/kernel.ts';
import { type ShaderName, SHADERS } from '../shaders.gen.ts';
import { concatChannels } from './concat.ts';
import { groupNorm } from './group_norm.ts';
import { lazyWeight, type WeightArray } from './weights.ts';

/**
 * The convolution kernel families. The best shape differs by adapter: on a software driver
 * (llvmpipe) each workgroup runs as a loop on one CPU core and barriers are expensive, so
 * register-blocked kernels with no workgroup memory win (conv2d.wgsl,
 * conv2d_wide_uniform_weights.wgsl); on a real GPU, workgroup-memory tiles shared by many invocations win
 * (conv2d_tiled.wgsl, in more than one tile shape: TILED_SHAPES). The choice is made where the
 * adapter is known (src/gpu/adapter.ts).
 */
export type ConvKernels = 'registers' | 'registers-storage' | TiledKernels;

/** The tiled families: shaders/include/conv_tiled.wgsl in two tile shapes, and a subgroup body (conv_tiled_subgroups.wgsl). */
export type TiledKernels = 'tiled' | 'tiled-wide' | 'tiled-wide-subgroups';

/**
 * 'registers' reads the weights through 64 KiB uniform windows (one dispatch per window), where
 * 'registers-storage' (the same kernels otherwise) reads them from one storage buffer.
 */
export const KERNEL_FAMILIES: readonly ConvKernels[] = ['registers', 'registers-storage', 'tiled', 'tiled-wide', 'tiled-wide-subgroups'];

/**
 * Each tiled family's shaders and tile: output channels and output pixels per workgroup (16 x 16
 * invocations, each accumulating channels / 16 x pixels / 16), as its shaders define them
 * (TILE_OC, TILE_PX), and the (image, group) pairs one workgroup can normalise (MAX_NORM_PAIRS).
 * The device features a family needs are its shaders' `enable` directives (missingFeatures).
 */
export const TILED_SHAPES: Readonly<
  Record<TiledKernels, {
    shader: ShaderName;
    shortcutShader: ShaderName;
    channels: number;
    pixels: number;
    maxNormPairs: number;
  }>
> = {
  // 4 channels x 4 pixels per invocation.
  'tiled': { shader: 'conv2d_tiled', shortcutShader: 'conv2d_tiled_shortcut', channels: 64, pixels: 64, maxNormPairs: 256 },
  // 4 channels x 8 pixels per invocation: the shape of the published WebGPU f32 matmul records.
  'tiled-wide': {
    shader: 'conv2d_tiled_wide',
    shortcutShader: 'conv2d_tiled_wide_shortcut',
    channels: 64,
    pixels: 128,
    maxNormPairs: 256,
  },
  // tiled-wide with the weights passed between invocations by subgroupShuffle, not workgroup memory.
  'tiled-wide-subgroups': {
    shader: 'conv2d_tiled_wide_subgroups',
    shortcutShader: 'conv2d_tiled_wide_subgroups_shortcut',
    channels: 64,
    pixels: 128,
    maxNormPairs: 256,
  },
};

/**
 * The conv kernel family an adapter should use, by what it says of itself: on a software adapter
 * the register kernels, with their weights through uniform windows on llvmpipe (1.2-1.5x there)
 * and from storage elsewhere (SwiftShader ran the windows ~15% slower: docs/perf.md).
 */
export function preferredKernels(adapter: GPUAdapter): ConvKernels {
  if (/llvmpipe|lavapipe/.test(adapterText(adapter))) return 'registers';
  return isSoftwareAdapter(adapter) ? 'registers-storage' : 'tiled';
}

/** The device features kernel family `kernels` needs and `device` lacks (the subgroup family: `subgroups`). */
export function kernelsMissingFeatures(kernels: ConvKernels, device: GPUDevice): GPUFeatureName[] {
  if (!isTiled(kernels)) return [];
  const { shader, shortcutShader } = TILED_SHAPES[kernels];
  return [...new Set([shader, shortcutShader].flatMap((name) => missingFeatures(SHADERS[name], device)))];
}

/** Whether `device` can run kernel family `kernels`. */
export function kernelsRunOn(kernels: ConvKernels, device: GPUDevice): boolean {
  return kernelsMissingFeatures(kernels, device).length === 0;
}

/** Whether `kernels` is one of the tiled families (workgroup-memory tiles, for real GPUs). */
export function isTiled(kernels: ConvKernels | undefined): kernels is TiledKernels {
  return kernels !== undefined && kernels in TILED_SHAPES;
}

/** Output channels one workgroup of conv2d.wgsl computes, and output pixels per invocation. */
const OC_BLOCK = 8;
const PX_BLOCK = 8;
/** conv2d_wide.wgsl: the same fast paths with 16 pixels per invocation, for wide rows. */
const WIDE_PX_BLOCK = 16;
/** 16-byte words in one uniform window of weights (conv_weights_uniform.wgsl): 64 KiB, WebGPU's minimum limit. */
const WINDOW_VEC4S = 4096;
/**
 * The fusion rule for GroupNorm into the tiled conv. A workgroup that normalises its own input
 * first reads every value of each image its columns touch, twice (mean, then variance): that
 * is redundant work, repeated by every workgroup of the image. It is fused when those reads are
 * at most this many times the workgroup's own staged reads (a 16 x 64 weight tile and a 16 x 64
 * input tile per 16 rows of depth for 'tiled', a 16 x 128 input tile for the 128-pixel families):
 * then the prologue at most multiplies the conv's memory traffic by a small factor, all of it
 * from a tensor small enough to sit in cache, in exchange for a dispatch and a pass that writes
 * and reads the normalised tensor. Larger images (for 'tiled', 64x64 and up for a 3x3 conv, over
 * 16x16 for a 1x1; over 19x19 for a 1x1 with 128-pixel tiles) keep a separate GroupNorm node.
 */
const NORM_READS_PER_STAGED_READ = 4;

/** conv2d.wgsl's code paths (its `path` param). */
const GENERAL = 0;
const ROWS_3X3 = 1;
const POINTWISE = 2;

export interface Conv2dOptions {
  stride?: number;
  /** [top, left, bottom, right]; diffusers' downsample_padding = 0 is [0, 0, 1, 1]. */
  padding?: [number, number, number, number];
  /** Read the input through a nearest-neighbour 2x upsampling (Upsample2D). */
  upsample?: boolean;
  /**
   * [N, C] added to every pixel, channels channelAddOffset .. + out_channels of it (a resnet's
   * projected time embedding, a slice of the one tensor that holds every resnet's).
   */
  channelAdd?: Tensor;
  channelAddOffset?: number;
  /** Same shape as the output, added before scaling (a residual connection). */
  residual?: Tensor;
  outputScale?: number;
  /**
   * More input channels, after x's: the conv reads the channel concatenation [x, concat] in place
   * (a skip connection's). The register kernels do so on their 1x1 paths; elsewhere the
   * concatenation is made first (a concat node named `${name}.input`).
   */
  concat?: Tensor;
  /**
   * Input channels [first, end) of x only (the register kernels' paths over 1x1): a conv whose
   * weights are too large for one uniform window is the sum of convs over parts of its input.
   */
  inputChannels?: [number, number];
  /** Which kernel family runs it (see ConvKernels): 'registers' (the default), 'tiled', ... */
  kernels?: ConvKernels;
  /**
   * Convolve GroupNorm(input) (SiLU of it with `silu`) rather than the input. The tiled kernel
   * normalises as it loads where the fusion rule allows (NORM_READS_PER_STAGED_READ); otherwise a
   * group_norm node named `name` comes first, as it always does for the register kernels.
   */
  groupNorm?: ConvGroupNorm;
  /**
   * A resnet's conv_shortcut, added to the output: + conv1x1(input (+ concat)) + its bias, over a
   * tensor of the output's batch and size. The tiled kernel folds it into its own accumulation
   * when the device has the storage buffers (maxStorageBuffers); otherwise it is a node of its own
   * named `name`, read as the residual.
   */
  shortcut?: ConvShortcut;
  /** The device's maxStorageBuffersPerShaderStage; WebGPU's default (8) when not given. */
  maxStorageBuffers?: number;
}

export interface ConvGroupNorm {
  name: string;
  gamma: WeightArray;
  beta: WeightArray;
  groups: number;
  eps: number;
  silu: boolean;
}

export interface ConvShortcut {
  name: string;
  input: Tensor;
  concat?: Tensor;
  weight: WeightArray;
  bias: WeightArray;
}

/** WebGPU's default maxStorageBuffersPerShaderStage. */
const DEFAULT_STORAGE_BUFFERS = 8;

/** Storage buffers a shader binds (its outputs included). */
function storageBuffers(shader: keyof typeof SHADERS): number {
  return SHADERS[shader].bindings.filter((b) => b.kind !== 'uniform').length;
}

/** The most images one tile of `tilePixels` of the N * out_pixels columns touches. */
function imagesPerTile(batch: number, outPixels: number, tilePixels: number): number {
  const columns = batch * outPixels;
  let most = 0;
  for (let px0 = 0; px0 < columns; px0 += tilePixels) {
    most = Math.max(most, Math.floor((Math.min(px0 + tilePixels, columns) - 1) / outPixels) - Math.floor(px0 / outPixels) + 1);
  }
  return most;
}

/** Whether the tiled conv of family `kernels` normalises its input itself (see NORM_READS_PER_STAGED_READ). */
export function tiledConvFusesGroupNorm(
  shape: { batch: number; channels: number; groups: number; srcPixels: number; outPixels: number; taps: number },
  kernels: TiledKernels = 'tiled',
): boolean {
  const tile = TILED_SHAPES[kernels];
  const images = imagesPerTile(shape.batch, shape.outPixels, tile.pixels);
  if (images * shape.groups > tile.maxNormPairs) return false;
  const statisticsReads = 2 * images * shape.channels * shape.srcPixels;
  const stagedReads = (tile.channels + tile.pixels) * shape.channels * shape.taps;
  return statisticsReads <= NORM_READS_PER_STAGED_READ * stagedReads;
}

/**
 * [Cout, Cin, kh, kw] → [Cin*kh*kw, Cout padded to `stride`] (zeros in the padding), so the output
 * channels a kernel computes together are contiguous and whole vec4s.
 */
export function transposeConvWeight(w: WeightArray, stride = w.shape[0]): Float32Array {
  const [cout, cin, kh, kw] = w.shape;
  const k = cin * kh * kw;
  const out = new Float32Array(k * stride);
  for (let o = 0; o < cout; o++) for (let i = 0; i < k; i++) out[i * stride + o] = w.data[o * k + i];
  return out;
}

function padded(data: Float32Array, length: number): Float32Array {
  const out = new Float32Array(length);
  out.set(data);
  return out;
}

export function conv2d(g: Graph, name: string, x: Tensor, weight: WeightArray, bias: WeightArray, options: Conv2dOptions = {}): Tensor {
  const b2 = options.concat;
  if (b2 && (b2.shape[0] !== x.shape[0] || b2.shape[2] !== x.shape[2] || b2.shape[3] !== x.shape[3])) {
    throw new Error(`${name}: cannot read [${x.shape}] and [${b2.shape}] as one concatenated input`);
  }
  const [n, cinA, srcH, srcW] = x.shape;
  const [channel0, channelEnd] = options.inputChannels ?? [0, cinA];
  if (options.inputChannels && (b2 || isTiled(options.kernels) || !(channel0 >= 0 && channel0 < channelEnd && channelEnd <= cinA))) {
    throw new Error(`${name}: cannot read input channels [${options.inputChannels}] of [${x.shape}] here`);
  }
  const cin = channelEnd - channel0 + (b2 ? b2.shape[1] : 0);
  const shape = weight.shape.length === 2 ? [weight.shape[0], weight.shape[1], 1, 1] : weight.shape;
  const [cout, wcin, kh, kw] = shape;
  if (wcin !== cin) throw new Error(`${name}: weight expects ${wcin} input channels, the input has ${cin}`);
  const stride = options.stride ?? 1;
  const [padTop, padLeft, padBottom, padRight] = options.padding ?? [0, 0, 0, 0];
  const pointwise = kh === 1 && kw === 1 && stride === 1 && !options.upsample && padTop + padLeft + padBottom + padRight === 0;
  const scale = options.upsample ? 2 : 1;
  const inH = srcH * scale;
  const inW = srcW * scale;
  const outH = Math.floor((inH + padTop + padBottom - kh) / stride) + 1;
  const outW = Math.floor((inW + padLeft + padRight - kw) / stride) + 1;
  if (outH < 1 || outW < 1) throw new Error(`${name}: a ${kh}x${kw} kernel does not fit the ${inH}x${inW} input`);
  const kernels = options.kernels;
  const tiled = isTiled(kernels);
  const norm = options.groupNorm;
  if (norm) {
    if (cin % norm.groups !== 0) throw new Error(`${name}: ${cin} input channels are not divisible into ${norm.groups} groups`);
    const fused = tiled && tiledConvFusesGroupNorm({
      batch: n,
      channels: cin,
      groups: norm.groups,
      srcPixels: srcH * srcW,
      outPixels: outH * outW,
      taps: kh * kw,
    }, kernels);
    if (!fused) {
      const normed = groupNorm(g, norm.name, x, norm.gamma, norm.beta, { groups: norm.groups, eps: norm.eps, silu: norm.silu, concat: b2 });
      return conv2d(g, name, normed, weight, bias, { ...options, groupNorm: undefined, concat: undefined });
    }
  }
  const sc = options.shortcut;
  let shortcutChannels = 0;
  if (sc) {
    if (options.residual) throw new Error(`${name}: a shortcut and a residual cannot both be added`);
    const [sn, sca, sh, sw] = sc.input.shape;
    const scb = sc.concat;
    if (scb && (scb.shape[0] !== sn || scb.shape[2] !== sh || scb.shape[3] !== sw)) {
      throw new Error(`${sc.name}: cannot read [${sc.input.shape}] and [${scb.shape}] as one concatenated input`);
    }
    if (sn !== n || sh !== outH || sw !== outW) {
      throw new Error(
        `${sc.name}: a shortcut input of shape [${sc.input.shape}] does not match the output [${n}, ${cout}, ${outH}, ${outW}]`,
      );
    }
    shortcutChannels = sca + (scb ? scb.shape[1] : 0);
    const ws = sc.weight.shape;
    if (ws[0] !== cout || ws[1] !== shortcutChannels || ws.slice(2).some((d) => d !== 1)) {
      throw new Error(
        `${sc.name}: a 1x1 shortcut from ${shortcutChannels} to ${cout} channels needs weights [${cout}, ${shortcutChannels}], got [${ws}]`,
      );
    }
    const fused = tiled && (options.maxStorageBuffers ?? DEFAULT_STORAGE_BUFFERS) >= storageBuffers(TILED_SHAPES[kernels].shortcutShader);
    if (!fused) {
      const residual = conv2d(g, sc.name, sc.input, sc.weight, sc.bias, { kernels: options.kernels, concat: scb });
      return conv2d(g, name, x, weight, bias, { ...options, shortcut: undefined, residual });
    }
  }
  if (b2 && !tiled && !(pointwise && (srcH * srcW) % 4 === 0)) {
    // The register kernels read two tensors only on their 1x1 paths: elsewhere the
    // concatenation is made first, and convolved.
    const cat = concatChannels(g, `${name}.input`, x, b2);
    return conv2d(g, name, cat, weight, bias, { ...options, concat: undefined });
  }
  const outShape = [n, cout, outH, outW];
  const addOffset = options.channelAddOffset ?? 0;
  const add = options.channelAdd;
  if (add && (add.shape.length !== 2 || add.shape[0] !== n || add.shape[1] < addOffset + cout)) {
    throw new Error(`${name}: channelAdd has shape [${add.shape}], expected [${n}, ${addOffset + cout} or more]`);
  }
  const res = options.residual;
  if (res && res.shape.join() !== outShape.join()) throw new Error(`${name}: residual has shape [${res.shape}], expected [${outShape}]`);
  const ocStride = Math.ceil(cout / OC_BLOCK) * OC_BLOCK;
  // Made only for the kernels that read it (the uniform windows are their own weights).
  const storageWeight = () =>
    weightOnce(
      g,
      `${weight.name}:transposed`,
      [cin * kh * kw, ocStride],
      () => transposeConvWeight({ ...weight, shape }, ocStride),
      g.weightType,
    );
  // Shared with the parts of a conv split over its input channels.
  const paddedBiasTensor = () => weightOnce(g, `${bias.name}:padded`, [ocStride], () => padded(bias.data, ocStride));
  // The params both families take alike (the register kernels see other sizes on their 1x1 path).
  const kernelParams = {
    batch: n,
    in_channels: cin,
    out_channels: cout,
    oc_stride: ocStride,
    kernel_h: kh,
    kernel_w: kw,
    stride,
    pad_top: padTop,
    pad_left: padLeft,
    upsample: options.upsample ? 1 : 0,
    in_channels_a: cinA,
  };
  const epilogue = {
    has_channel_add: options.channelAdd ? 1 : 0,
    has_residual: options.residual ? 1 : 0,
    output_scale: options.outputScale ?? 1,
    channel_add_offset: addOffset,
    channel_add_stride: add ? add.shape[1] : 0,
  };
  const flops = 2 * n * cout * outH * outW * cin * kh * kw;
  const element = bytesPerElement(g.activationType);
  const weightElement = bytesPerElement(g.weightType);
  const bytes = byteSize(x) + (b2 ? byteSize(b2) : 0) + weightElement * elementCount(weight.shape) +
    element * elementCount(outShape) * (options.residual ? 2 : 1);
  const kind = kh === 1 && kw === 1 ? 'conv1x1' : 'conv3x3';
  if (tiled) {
    const tile = TILED_SHAPES[kernels];
    const out = g.intermediate(name, outShape);
    // The shortcut's weights are more rows of the GEMM's depth, under the conv's; its bias adds to the conv's.
    const wTiled = sc
      ? g.weight(`${weight.name}:transposed+${sc.weight.name}`, [cin * kh * kw + shortcutChannels, ocStride], () => {
        const stacked = new Float32Array((cin * kh * kw + shortcutChannels) * ocStride);
        stacked.set(transposeConvWeight({ ...weight, shape }, ocStride));
        stacked.set(transposeConvWeight({ ...sc.weight, shape: [cout, shortcutChannels, 1, 1] }, ocStride), cin * kh * kw * ocStride);
        return stacked;
      }, g.weightType)
      : storageWeight();
    const bTiled = sc
      ? g.weight(`${bias.name}:padded+${sc.bias.name}`, [ocStride], () => padded(bias.data.map((v, i) => v + sc.bias.data[i]), ocStride))
      : paddedBiasTensor();
    const gammaBeta = norm
      ? g.weight(`${norm.gamma.name}+${norm.beta.name}`, [2 * cin], () => {
        const both = new Float32Array(2 * cin);
        both.set(norm.gamma.data);
        both.set(norm.beta.data, cin);
        return both;
      })
      : null;
    const shader = sc ? tile.shortcutShader : tile.shader;
    const [tileWidth, tileHeight] = SHADERS[shader].workgroupSize;
    g.addNode({
      name,
      kind: `${kind}${norm ? (norm.silu ? '+group_norm_silu' : '+group_norm') : ''}${sc ? '+shortcut' : ''}`,
      shader,
      inputs: [
        x,
        b2 ?? null,
        gammaBeta,
        wTiled,
        bTiled,
        options.channelAdd ?? null,
        options.residual ?? null,
        ...(sc ? [sc.input, sc.concat ?? null] : []),
      ],
      outputs: [out],
      params: {
        ...kernelParams,
        src_height: srcH,
        src_width: srcW,
        in_height: inH,
        in_width: inW,
        out_height: outH,
        out_width: outW,
        ...epilogue,
        norm: norm ? 1 : 0,
        groups: norm?.groups ?? 1,
        eps: norm?.eps ?? 0,
        silu: norm?.silu ? 1 : 0,
        shortcut_channels: shortcutChannels,
        shortcut_channels_a: sc ? sc.input.shape[1] : 0,
      },
      // One workgroup per tile of output pixels x output channels.
      dispatch: {
        invocations: [Math.ceil((n * outH * outW) / tile.pixels) * tileWidth, Math.ceil(cout / tile.channels) * tileHeight],
      },
      flops: flops + (sc ? 2 * n * cout * outH * outW * shortcutChannels : 0),
      bytes: bytes + (sc ? byteSize(sc.input) + (sc.concat ? byteSize(sc.concat) : 0) + weightElement * elementCount(sc.weight.shape) : 0),
    });
    return out;
  }
  // The fast paths read rows as vec4s, so the rows (or, for a 1x1 kernel, whole planes) must
  // hold a multiple of 4 values.
  let path = GENERAL;
  if (pointwise && (srcH * srcW) % 4 === 0) path = POINTWISE;
  else if (kh === 3 && kw === 3 && stride === 1 && padLeft === 1 && srcW % 4 === 0) path = ROWS_3X3;
  // The pointwise path sees each image as a single row of H*W pixels.
  const [viewH, viewW] = path === POINTWISE ? [1, srcH * srcW] : [srcH, srcW];
  const [viewInH, viewInW] = path === POINTWISE ? [1, srcH * srcW] : [inH, inW];
  const [viewOutH, viewOutW] = path === POINTWISE ? [1, outH * outW] : [outH, outW];
  // Wide rows take 16 pixels per invocation (conv2d_wide_main.wgsl), the rest 8 (conv2d.wgsl).
  const wideRows = path !== GENERAL && viewOutW >= WIDE_PX_BLOCK;
  const ocBlocks = ocStride / OC_BLOCK;
  // Uniform windows of weights: each dispatch takes the output-channel blocks one window holds.
  // Only where it pays (measured on llvmpipe, docs/perf.md): a kernel larger than 1x1 (for a 1x1
  // conv the weights are a small part of the loads: 1.05x) on wide rows, whose dispatches get two
  // or more workgroups even for one image (a window of one workgroup runs on one core: 0.93x at
  // 8x8). Everything else reads one storage buffer with conv2d.wgsl: on llvmpipe each program
  // costs seconds to compile at its first run (3-19 s for the register convs), and the variants
  // that once served the rest (16-pixel rows from storage, whole 4x4 images per invocation,
  // 8-pixel rows through windows) saved under 2% of a forward for ~30 s of a first run
  // (docs/perf.md, "The first run"). 'registers-storage' keeps the 16-pixel rows, from storage.
  // Counted for one image, so that every batch size takes the same windows (the same weights,
  // uploaded once for all of a model's graphs, and the same sums).
  const workgroupsPerImage = Math.ceil(
    (viewOutH * Math.ceil(viewOutW / WIDE_PX_BLOCK)) / SHADERS.conv2d_wide_uniform_weights.workgroupSize[0],
  );
  const storageFamily = options.kernels === 'registers-storage';
  const windowed = !storageFamily && wideRows && kh * kw > 1 && workgroupsPerImage >= 2;
  const wide = storageFamily ? wideRows : windowed;
  const rowBlocks = Math.ceil(viewOutW / (wide ? WIDE_PX_BLOCK : PX_BLOCK));
  // (image, row, pixel block) cells.
  const blocks = n * viewOutH * rowBlocks;
  const rows = cin * kh * kw;
  // A row of a block is 8 channels: two 16-byte words of f32, one of f16.
  const blockVec4s = (weightElement / 2) * rows;
  const windowValues = (16 / weightElement) * WINDOW_VEC4S;
  if (windowed && blockVec4s > WINDOW_VEC4S) {
    // Too many input channels for one window: the sum of convs over parts of them, each adding
    // the one before as its residual (the bias, channelAdd and residual in the first, the scale in
    // the last). Whatever the batch, so an image never depends on it.
    if (options.inputChannels) throw new Error(`${name}: input channels [${options.inputChannels}] do not fit one window`);
    const parts = Math.ceil(blockVec4s / WINDOW_VEC4S);
    const per = Math.ceil(cin / parts);
    let sum = options.residual;
    for (let c0 = 0; c0 < cin; c0 += per) {
      const c1 = Math.min(cin, c0 + per);
      const last = c1 === cin;
      const part = sliceInputChannels(weight, shape, c0, c1);
      const partBias = c0 === 0 ? bias : { name: `${bias.name}:zeros`, shape: [cout], data: new Float32Array(cout) };
      sum = conv2d(g, last ? name : `${name}.in${c0}-${c1 - 1}`, x, part, partBias, {
        ...options,
        inputChannels: [c0, c1],
        channelAdd: c0 === 0 ? options.channelAdd : undefined,
        residual: sum,
        outputScale: last ? options.outputScale : 1,
      });
    }
    return sum!;
  }
  const out = g.intermediate(name, outShape);
  const blocksPerWindow = windowed ? Math.floor(WINDOW_VEC4S / blockVec4s) : ocBlocks;
  const windows = Math.ceil(ocBlocks / blocksPerWindow);
  let transposed: Float32Array | undefined;
  const transposedWeight = () => transposed ??= transposeConvWeight({ ...weight, shape }, ocStride);
  for (let window = 0; window < windows; window++) {
    const block0 = window * blocksPerWindow;
    const count = Math.min(blocksPerWindow, ocBlocks - block0);
    const weights = windowed
      ? g.weight(
        `${weight.name}:window${window}of${windows}`,
        [windowValues],
        () => weightWindow(transposedWeight(), rows, ocStride, block0, count, windowValues),
        g.weightType,
      )
      : storageWeight();
    const shaderName = windowed ? 'conv2d_wide_uniform_weights' : wide ? 'conv2d_wide' : 'conv2d';
    g.addNode({
      name: windows > 1 ? `${name}.oc${block0 * OC_BLOCK}-${(block0 + count) * OC_BLOCK - 1}` : name,
      kind,
      shader: shaderName,
      inputs: [x, x, weights, paddedBiasTensor(), options.channelAdd ?? null, options.residual ?? null, b2 ?? null],
      outputs: [out],
      params: {
        ...kernelParams,
        src_height: viewH,
        src_width: viewW,
        in_height: viewInH,
        in_width: viewInW,
        out_height: viewOutH,
        out_width: viewOutW,
        ...epilogue,
        row_blocks: rowBlocks,
        blocks,
        path,
        src_channels: cinA,
        in_channel0: channel0,
        oc_block0: block0,
        weight_block_vec4s: windowed ? blockVec4s : 0,
      },
      // One invocation per block of pixels, for each block of 8 channels.
      dispatch: { invocations: [blocks, count] },
      flops: (flops * count) / ocBlocks,
      bytes: (bytes * count) / ocBlocks,
    });
  }
  return out;
}

/** Weight `name` of the graph, made by `data` the first time it is asked for. */
function weightOnce(g: Graph, name: string, shape: number[], data: () => Float32Array, dtype?: DataType): Tensor {
  return g.has(name) ? g.tensor(name) : g.weight(name, shape, data, dtype);
}

/** Input channels [c0, c1) of conv weights [Cout, Cin, kh, kw]. */
function sliceInputChannels(weight: WeightArray, shape: number[], c0: number, c1: number): WeightArray {
  const [cout, cin, kh, kw] = shape;
  const taps = kh * kw;
  // Sliced when uploaded, not when the graph is built: a graph holds no weight values of its own.
  return lazyWeight(`${weight.name}[:, ${c0}:${c1}]`, [cout, c1 - c0, kh, kw], () => {
    const all = weight.data;
    const data = new Float32Array(cout * (c1 - c0) * taps);
    for (let o = 0; o < cout; o++) data.set(all.subarray((o * cin + c0) * taps, (o * cin + c1) * taps), o * (c1 - c0) * taps);
    return data;
  });
}

/**
 * Output-channel blocks block0 .. block0 + count of the transposed weights ([rows, ocStride]), as
 * conv_weights_uniform.wgsl reads them: [block][row][8 channels], zero-padded to a whole window.
 */
function weightWindow(
  transposed: Float32Array,
  rows: number,
  ocStride: number,
  block0: number,
  count: number,
  values: number,
): Float32Array {
  const out = new Float32Array(values);
  for (let b = 0; b < count; b++) {
    for (let r = 0; r < rows; r++) {
      const from = r * ocStride + (block0 + b) * OC_BLOCK;
      out.set(transposed.subarray(from, from + OC_BLOCK), (b * rows + r) * OC_BLOCK);
    }
  }
  return out;
}
