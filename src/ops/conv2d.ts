import { byteSize, elementCount, type Graph, type Tensor } from '../graph/graph.ts';
import { SHADERS } from '../shaders.gen.ts';
import { concatChannels } from './concat.ts';
import type { WeightArray } from './weights.ts';

/**
 * The convolution kernel families. The best shape differs by adapter: on a software driver
 * (llvmpipe) each workgroup runs as a loop on one CPU core and barriers are expensive, so
 * register-blocked kernels with no workgroup memory win (conv2d.wgsl, conv2d_wide.wgsl,
 * conv2d_small.wgsl); on a real GPU, workgroup-memory tiles shared by many invocations win
 * (conv2d_tiled.wgsl). The choice is made where the adapter is known (src/gpu/adapter.ts).
 */
export type ConvKernels = 'registers' | 'registers-storage' | 'tiled';

/**
 * 'registers' reads the weights through 64 KiB uniform windows (one dispatch per window), where
 * 'registers-storage' (the same kernels otherwise) reads them from one storage buffer.
 */
export const KERNEL_FAMILIES: readonly ConvKernels[] = ['registers', 'registers-storage', 'tiled'];

/** Output channels one workgroup of conv2d.wgsl computes, and output pixels per invocation. */
const OC_BLOCK = 8;
const PX_BLOCK = 8;
/** conv2d_wide.wgsl: the same fast paths with 16 pixels per invocation, for wide rows. */
const WIDE_PX_BLOCK = 16;
/** vec4s in one uniform window of weights (conv_weights_uniform.wgsl): 64 KiB, WebGPU's minimum limit. */
const WINDOW_VEC4S = 4096;
/** conv2d_tiled.wgsl's tile: 64 output channels x 64 output pixels per workgroup. */
const TILE = 64;

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
  /** Which kernel family runs it (see ConvKernels): 'registers' (the default) or 'tiled'. */
  kernels?: ConvKernels;
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
  const cin = cinA + (b2 ? b2.shape[1] : 0);
  const shape = weight.shape.length === 2 ? [weight.shape[0], weight.shape[1], 1, 1] : weight.shape;
  const [cout, wcin, kh, kw] = shape;
  if (wcin !== cin) throw new Error(`${name}: weight expects ${wcin} input channels, the input has ${cin}`);
  const stride = options.stride ?? 1;
  const [padTop, padLeft, padBottom, padRight] = options.padding ?? [0, 0, 0, 0];
  const pointwise = kh === 1 && kw === 1 && stride === 1 && !options.upsample && padTop + padLeft + padBottom + padRight === 0;
  if (b2 && options.kernels !== 'tiled' && !(pointwise && (srcH * srcW) % 4 === 0)) {
    // The register kernels read two tensors only on their 1x1 paths: elsewhere the
    // concatenation is made first, and convolved.
    const cat = concatChannels(g, `${name}.input`, x, b2);
    return conv2d(g, name, cat, weight, bias, { ...options, concat: undefined });
  }
  const scale = options.upsample ? 2 : 1;
  const inH = srcH * scale;
  const inW = srcW * scale;
  const outH = Math.floor((inH + padTop + padBottom - kh) / stride) + 1;
  const outW = Math.floor((inW + padLeft + padRight - kw) / stride) + 1;
  if (outH < 1 || outW < 1) throw new Error(`${name}: a ${kh}x${kw} kernel does not fit the ${inH}x${inW} input`);
  const out = g.intermediate(name, [n, cout, outH, outW]);
  const addOffset = options.channelAddOffset ?? 0;
  const add = options.channelAdd;
  if (add && (add.shape.length !== 2 || add.shape[0] !== n || add.shape[1] < addOffset + cout)) {
    throw new Error(`${name}: channelAdd has shape [${add.shape}], expected [${n}, ${addOffset + cout} or more]`);
  }
  const res = options.residual;
  if (res && res.shape.join() !== out.shape.join()) throw new Error(`${name}: residual has shape [${res.shape}], expected [${out.shape}]`);
  const ocStride = Math.ceil(cout / OC_BLOCK) * OC_BLOCK;
  // Made only for the kernels that read it (the uniform windows are their own weights).
  const transposedName = `${weight.name}:transposed`;
  const storageWeight = () =>
    g.has(transposedName)
      ? g.tensor(transposedName)
      : g.weight(transposedName, [cin * kh * kw, ocStride], () => transposeConvWeight({ ...weight, shape }, ocStride));
  const b = g.weight(`${bias.name}:padded`, [ocStride], () => padded(bias.data, ocStride));
  const epilogue = {
    has_channel_add: options.channelAdd ? 1 : 0,
    has_residual: options.residual ? 1 : 0,
    output_scale: options.outputScale ?? 1,
    channel_add_offset: addOffset,
    channel_add_stride: add ? add.shape[1] : 0,
  };
  const flops = 2 * n * cout * outH * outW * cin * kh * kw;
  const bytes = byteSize(x) + (b2 ? byteSize(b2) : 0) + 4 * elementCount(weight.shape) + byteSize(out) * (options.residual ? 2 : 1);
  const kind = kh === 1 && kw === 1 ? 'conv1x1' : 'conv3x3';
  if (options.kernels === 'tiled') {
    const [tileWidth, tileHeight] = SHADERS.conv2d_tiled.workgroupSize;
    g.addNode({
      name,
      kind,
      shader: 'conv2d_tiled',
      inputs: [x, storageWeight(), b, options.channelAdd ?? null, options.residual ?? null, b2 ?? null],
      outputs: [out],
      params: {
        batch: n,
        in_channels: cin,
        src_height: srcH,
        src_width: srcW,
        in_height: inH,
        in_width: inW,
        out_channels: cout,
        oc_stride: ocStride,
        out_height: outH,
        out_width: outW,
        kernel_h: kh,
        kernel_w: kw,
        stride,
        pad_top: padTop,
        pad_left: padLeft,
        upsample: options.upsample ? 1 : 0,
        ...epilogue,
        in_channels_a: cinA,
      },
      // One workgroup per tile of output pixels x output channels.
      dispatch: { invocations: [Math.ceil((n * outH * outW) / TILE) * tileWidth, Math.ceil(cout / TILE) * tileHeight] },
      flops,
      bytes,
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
  // The smallest images (4x4) go whole to one invocation (conv2d_small.wgsl), wide rows take 16
  // pixels per invocation (conv2d_wide.wgsl), the rest 8 (conv2d.wgsl).
  const small = (path === ROWS_3X3 && srcW === 4 && srcH <= 4 && !options.upsample && padTop === 1 && padBottom === 1 && padRight === 1) ||
    (path === POINTWISE && srcH * srcW <= 16);
  const wide = !small && path !== GENERAL && viewOutW >= WIDE_PX_BLOCK;
  const rowBlocks = Math.ceil(viewOutW / (wide ? WIDE_PX_BLOCK : PX_BLOCK));
  // conv2d_small counts (image, channel block) pairs; the others (image, row, pixel block) cells.
  const blocks = small ? n * (ocStride / OC_BLOCK) : n * viewOutH * rowBlocks;
  const ocBlocks = ocStride / OC_BLOCK;
  // Uniform windows of weights: each dispatch takes the output-channel blocks one window holds.
  // conv2d_small's lanes take different channel blocks, so it keeps the storage buffer, as does a
  // conv whose one block of weights is over 64 KiB (more than 2048 input channels x taps).
  const rows = cin * kh * kw;
  const blockVec4s = 2 * rows;
  const windowed = options.kernels !== 'registers-storage' && !small && blockVec4s <= WINDOW_VEC4S;
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
        [4 * WINDOW_VEC4S],
        () => weightWindow(transposedWeight(), rows, ocStride, block0, count),
      )
      : storageWeight();
    const shaderName = small
      ? 'conv2d_small'
      : windowed
      ? (wide ? 'conv2d_wide_uniform_weights' : 'conv2d_uniform_weights')
      : wide
      ? 'conv2d_wide'
      : 'conv2d';
    g.addNode({
      name: windows > 1 ? `${name}.oc${block0 * OC_BLOCK}-${(block0 + count) * OC_BLOCK - 1}` : name,
      kind,
      shader: shaderName,
      inputs: [x, x, weights, b, options.channelAdd ?? null, options.residual ?? null, b2 ?? null],
      outputs: [out],
      params: {
        batch: n,
        in_channels: cin,
        src_height: viewH,
        src_width: viewW,
        in_height: viewInH,
        in_width: viewInW,
        out_channels: cout,
        oc_stride: ocStride,
        out_height: viewOutH,
        out_width: viewOutW,
        kernel_h: kh,
        kernel_w: kw,
        stride,
        pad_top: padTop,
        pad_left: padLeft,
        upsample: options.upsample ? 1 : 0,
        ...epilogue,
        row_blocks: rowBlocks,
        blocks,
        path,
        in_channels_a: cinA,
        oc_block0: block0,
        weight_block_vec4s: windowed ? blockVec4s : 0,
      },
      // One invocation per block of pixels (per image for conv2d_small), for each block of 8 channels.
      dispatch: { invocations: [blocks, small ? 1 : count] },
      flops: (flops * count) / ocBlocks,
      bytes: (bytes * count) / ocBlocks,
    });
  }
  return out;
}

/**
 * Output-channel blocks block0 .. block0 + count of the transposed weights ([rows, ocStride]), as
 * conv_weights_uniform.wgsl reads them: [block][row][8 channels], zero-padded to a whole window.
 */
function weightWindow(transposed: Float32Array, rows: number, ocStride: number, block0: number, count: number): Float32Array {
  const out = new Float32Array(4 * WINDOW_VEC4S);
  for (let b = 0; b < count; b++) {
    for (let r = 0; r < rows; r++) {
      const from = r * ocStride + (block0 + b) * OC_BLOCK;
      out.set(transposed.subarray(from, from + OC_BLOCK), (b * rows + r) * OC_BLOCK);
    }
  }
  return out;
}
