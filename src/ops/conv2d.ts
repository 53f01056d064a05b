import { type Graph, type Tensor, byteSize, elementCount } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

/** Output channels and pixels one invocation of conv2d.wgsl computes (its OC_BLOCK, PX_BLOCK). */
const OC_BLOCK = 8;
const PX_BLOCK = 4;
const WORKGROUP = [8, 8];

export interface Conv2dOptions {
  stride?: number;
  /** [top, left, bottom, right]; diffusers' downsample_padding = 0 is [0, 0, 1, 1]. */
  padding?: [number, number, number, number];
  /** Read the input through a nearest-neighbour 2x upsampling (Upsample2D). */
  upsample?: boolean;
  /** [N, out_channels] added to every pixel (a resnet's projected time embedding). */
  channelAdd?: Tensor;
  /** Same shape as the output, added before scaling (a residual connection). */
  residual?: Tensor;
  outputScale?: number;
}

/** [Cout, Cin, kh, kw] → [Cin*kh*kw, Cout], so an invocation's output channels are contiguous. */
export function transposeConvWeight(w: WeightArray): Float32Array {
  const [cout, cin, kh, kw] = w.shape;
  const k = cin * kh * kw;
  const out = new Float32Array(k * cout);
  for (let o = 0; o < cout; o++) for (let i = 0; i < k; i++) out[i * cout + o] = w.data[o * k + i];
  return out;
}

export function conv2d(g: Graph, name: string, x: Tensor, weight: WeightArray, bias: WeightArray, options: Conv2dOptions = {}): Tensor {
  const [n, cin, srcH, srcW] = x.shape;
  const shape = weight.shape.length === 2 ? [weight.shape[0], weight.shape[1], 1, 1] : weight.shape;
  const [cout, wcin, kh, kw] = shape;
  if (wcin !== cin) throw new Error(`${name}: weight expects ${wcin} input channels, the input has ${cin}`);
  const stride = options.stride ?? 1;
  const [padTop, padLeft, padBottom, padRight] = options.padding ?? [0, 0, 0, 0];
  const scale = options.upsample ? 2 : 1;
  const inH = srcH * scale;
  const inW = srcW * scale;
  const outH = Math.floor((inH + padTop + padBottom - kh) / stride) + 1;
  const outW = Math.floor((inW + padLeft + padRight - kw) / stride) + 1;
  const out = g.intermediate(name, [n, cout, outH, outW]);
  for (const [what, t] of [['channelAdd', options.channelAdd], ['residual', options.residual]] as const) {
    if (!t) continue;
    const want = what === 'residual' ? out.shape : [n, cout];
    if (t.shape.join() !== want.join()) throw new Error(`${name}: ${what} has shape [${t.shape}], expected [${want}]`);
  }
  const w = g.weight(`${weight.name}:transposed`, [cin * kh * kw, cout], transposeConvWeight({ ...weight, shape }));
  const b = g.weight(bias.name, bias.shape, bias.data);
  const outPixels = outH * outW;
  g.addNode({
    name,
    kind: kh === 1 && kw === 1 ? 'conv1x1' : 'conv3x3',
    shader: 'conv2d',
    inputs: [x, w, b, options.channelAdd ?? null, options.residual ?? null],
    outputs: [out],
    params: {
      batch: n, in_channels: cin, src_height: srcH, src_width: srcW, in_height: inH, in_width: inW,
      out_channels: cout, out_height: outH, out_width: outW, kernel_h: kh, kernel_w: kw, stride,
      pad_top: padTop, pad_left: padLeft, upsample: options.upsample ? 1 : 0,
      has_channel_add: options.channelAdd ? 1 : 0, has_residual: options.residual ? 1 : 0,
      output_scale: options.outputScale ?? 1,
    },
    workgroups: [Math.ceil(Math.ceil(outPixels / PX_BLOCK) / WORKGROUP[0]), Math.ceil(Math.ceil(cout / OC_BLOCK) / WORKGROUP[1]), n],
    flops: 2 * n * cout * outPixels * cin * kh * kw,
    bytes: byteSize(x) + 4 * elementCount(weight.shape) + byteSize(out) * (options.residual ? 2 : 1),
  });
  return out;
}
