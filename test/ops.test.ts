// Each op's kernels against a small CPU reference in float64: convolutions with stride 2,
// asymmetric padding, upsampling, the fused epilogue, odd image sizes and channel counts that do
// not divide the kernels' blocks; group norm; attention with several heads. Every case prints its
// measured error.
import { suite } from 'uvu';
import { CompiledGraph } from '../src/graph/executor.ts';
import { Graph, type GraphNode } from '../src/graph/graph.ts';
import { attentionCore, spatialAttention } from '../src/ops/attention.ts';
import { concatChannels } from '../src/ops/concat.ts';
import {
  conv2d,
  type Conv2dOptions,
  type ConvKernels,
  isTiled,
  KERNEL_FAMILIES,
  kernelsRunOn,
  TILED_SHAPES,
  tiledConvFusesGroupNorm,
} from '../src/ops/conv2d.ts';
import { groupNorm } from '../src/ops/group_norm.ts';
import { isSoftwareAdapter } from '../src/gpu/adapter.ts';
import { preferredKernels } from '../src/ops/conv2d.ts';
import type { WeightArray } from '../src/ops/weights.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { mulberry32 } from './util/random.ts';
import { gpu, runGraph } from './util/shared_gpu.ts';

// f32 sums of a few hundred terms against a float64 reference: ~1e-7 relative is typical.
const TOLERANCE = 2e-6;

/** A deterministic generator in [-0.5, 0.5), so a failure reproduces. */
function random(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => uniform() - 0.5;
}

function filled(n: number, rand: () => number, scale = 1): Float32Array {
  return new Float32Array(n).map(() => rand() * scale);
}

function weight(name: string, shape: number[], rand: () => number, scale = 1): WeightArray {
  return { name, shape, data: filled(shape.reduce((a, b) => a * b, 1), rand, scale) };
}

/**
 * The kernel families this device runs: all of them on Dawn (lavapipe has `subgroups`); a device
 * without `subgroups` leaves out 'tiled-wide-subgroups', whose refusal is tested below instead.
 */
const testDevice = (await gpu()).device;
const FAMILIES = KERNEL_FAMILIES.filter((k) => kernelsRunOn(k, testDevice));
console.log(`    kernel families tested here: ${FAMILIES.join(', ')}`);

// ---------------------------------------------------------------------------------------------
// CPU references (float64 accumulation)

interface ConvCase {
  batch: number;
  cin: number;
  cout: number;
  height: number;
  width: number;
  kernel: number;
  options: Omit<Conv2dOptions, 'channelAdd' | 'residual'> & { channelAdd?: boolean; residual?: boolean };
}

/** A case's conv options, less the flags that ask the test for a channelAdd or residual tensor. */
function convOptions(c: ConvCase): Conv2dOptions {
  const { channelAdd: _channelAdd, residual: _residual, ...options } = c.options;
  return options;
}

function convOutputSize(c: ConvCase): [number, number] {
  const scale = c.options.upsample ? 2 : 1;
  const [pt, pl, pb, pr] = c.options.padding ?? [0, 0, 0, 0];
  const stride = c.options.stride ?? 1;
  return [
    Math.floor((c.height * scale + pt + pb - c.kernel) / stride) + 1,
    Math.floor((c.width * scale + pl + pr - c.kernel) / stride) + 1,
  ];
}

// channelAdd is a slice of a wider tensor (as every resnet's time embedding is one tensor).
const ADD_EXTRA = 5;
const ADD_OFFSET = 3;

function conv2dReference(
  c: ConvCase,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  channelAdd?: Float32Array,
  residual?: Float32Array,
): Float32Array {
  const [outH, outW] = convOutputSize(c);
  const scale = c.options.upsample ? 2 : 1;
  const inH = c.height * scale, inW = c.width * scale;
  const [pt, pl] = c.options.padding ?? [0, 0, 0, 0];
  const stride = c.options.stride ?? 1;
  const k = c.kernel;
  const out = new Float32Array(c.batch * c.cout * outH * outW);
  for (let n = 0; n < c.batch; n++) {
    for (let o = 0; o < c.cout; o++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          let acc = b[o] + (channelAdd ? channelAdd[n * (c.cout + ADD_EXTRA) + ADD_OFFSET + o] : 0);
          for (let i = 0; i < c.cin; i++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * stride + ky - pt;
              if (iy < 0 || iy >= inH) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * stride + kx - pl;
                if (ix < 0 || ix >= inW) continue;
                const sy = Math.floor(iy / scale), sx = Math.floor(ix / scale);
                acc += w[((o * c.cin + i) * k + ky) * k + kx] * x[((n * c.cin + i) * c.height + sy) * c.width + sx];
              }
            }
          }
          const index = ((n * c.cout + o) * outH + oy) * outW + ox;
          if (residual) acc += residual[index];
          out[index] = acc * (c.options.outputScale ?? 1);
        }
      }
    }
  }
  return out;
}

function groupNormReference(
  x: Float32Array,
  shape: number[],
  gamma: Float32Array,
  beta: Float32Array,
  groups: number,
  eps: number,
  silu: boolean,
): Float32Array {
  const [n, c, h, w] = shape;
  const spatial = h * w;
  const perGroup = (c / groups) * spatial;
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const base = (b * c + g * (c / groups)) * spatial;
      let mean = 0;
      for (let i = 0; i < perGroup; i++) mean += x[base + i];
      mean /= perGroup;
      let variance = 0;
      for (let i = 0; i < perGroup; i++) variance += (x[base + i] - mean) ** 2;
      variance /= perGroup;
      const inv = 1 / Math.sqrt(variance + eps);
      for (let i = 0; i < perGroup; i++) {
        const ch = g * (c / groups) + Math.floor(i / spatial);
        let v = (x[base + i] - mean) * inv * gamma[ch] + beta[ch];
        if (silu) v = v / (1 + Math.exp(-v));
        out[base + i] = v;
      }
    }
  }
  return out;
}

/** 1x1 convolution over channels, in float64. */
function projectReference(
  x: Float64Array | Float32Array,
  n: number,
  cin: number,
  spatial: number,
  w: WeightArray,
  b: WeightArray,
): Float64Array {
  const cout = w.shape[0];
  const out = new Float64Array(n * cout * spatial);
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < cout; o++) {
      for (let p = 0; p < spatial; p++) {
        let acc = b.data[o];
        for (let i = 0; i < cin; i++) acc += w.data[o * cin + i] * x[(s * cin + i) * spatial + p];
        out[(s * cout + o) * spatial + p] = acc;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const ops = suite('ops');

const CONV_CASES: [string, ConvCase][] = [
  ['3x3 pad 1, 5x7 image, 5 -> 11 channels, batch 3', {
    batch: 3,
    cin: 5,
    cout: 11,
    height: 5,
    width: 7,
    kernel: 3,
    options: { padding: [1, 1, 1, 1] },
  }],
  ['3x3 pad 1, 16x16, 32 -> 40, channelAdd + residual + scale', {
    batch: 2,
    cin: 32,
    cout: 40,
    height: 16,
    width: 16,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], channelAdd: true, residual: true, outputScale: 0.5 },
  }],
  ['3x3 stride 2, pad [0,0,1,1], 9x6 image, 6 -> 13', {
    batch: 3,
    cin: 6,
    cout: 13,
    height: 9,
    width: 6,
    kernel: 3,
    options: { stride: 2, padding: [0, 0, 1, 1] },
  }],
  ['3x3 stride 2, pad 1, 8x8, 16 -> 16', {
    batch: 1,
    cin: 16,
    cout: 16,
    height: 8,
    width: 8,
    kernel: 3,
    options: { stride: 2, padding: [1, 1, 1, 1] },
  }],
  ['3x3 upsample 2x, 3x5 image, 7 -> 9, batch 3', {
    batch: 3,
    cin: 7,
    cout: 9,
    height: 3,
    width: 5,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true },
  }],
  ['3x3 no padding, 6x9 image, 4 -> 20', { batch: 2, cin: 4, cout: 20, height: 6, width: 9, kernel: 3, options: {} }],
  ['3x3 asymmetric pad [2,0,1,3], 7x5, 3 -> 6', {
    batch: 1,
    cin: 3,
    cout: 6,
    height: 7,
    width: 5,
    kernel: 3,
    options: { padding: [2, 0, 1, 3] },
  }],
  ['1x1, 5x7 image, 10 -> 7, residual, batch 3', {
    batch: 3,
    cin: 10,
    cout: 7,
    height: 5,
    width: 7,
    kernel: 1,
    options: { residual: true },
  }],
  ['1x1, 4x4 image, 64 -> 36, channelAdd', { batch: 2, cin: 64, cout: 36, height: 4, width: 4, kernel: 1, options: { channelAdd: true } }],
  ['5x5 pad 2, 6x6, 3 -> 5 (a kernel size the model does not use)', {
    batch: 2,
    cin: 3,
    cout: 5,
    height: 6,
    width: 6,
    kernel: 5,
    options: { padding: [2, 2, 2, 2] },
  }],
  // Widths that are a multiple of 4 take the register kernel's vec4-row paths.
  ['3x3 pad 1, 6x12 image (a partial pixel block), 9 -> 10, batch 3', {
    batch: 3,
    cin: 9,
    cout: 10,
    height: 6,
    width: 12,
    kernel: 3,
    options: { padding: [1, 1, 1, 1] },
  }],
  // 4x4 images: a half-empty block of 8 pixels per row.
  ['3x3 pad 1, 4x4 image, 20 -> 12, batch 2', {
    batch: 2,
    cin: 20,
    cout: 12,
    height: 4,
    width: 4,
    kernel: 3,
    options: { padding: [1, 1, 1, 1] },
  }],
  ['3x3 pad 1, 3x4 image, 7 -> 19, batch 3, channelAdd + residual', {
    batch: 3,
    cin: 7,
    cout: 19,
    height: 3,
    width: 4,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], channelAdd: true, residual: true },
  }],
  ['1x1, 2x2 image, 9 -> 24, batch 3', { batch: 3, cin: 9, cout: 24, height: 2, width: 2, kernel: 1, options: {} }],
  ['3x3 pad [2,1,0,3], 5x8 image, 4 -> 5', {
    batch: 1,
    cin: 4,
    cout: 5,
    height: 5,
    width: 8,
    kernel: 3,
    options: { padding: [2, 1, 0, 3] },
  }],
  ['3x3 upsample 2x, 3x4 image, 6 -> 11, batch 3, channelAdd + residual', {
    batch: 3,
    cin: 6,
    cout: 11,
    height: 3,
    width: 4,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true, channelAdd: true, residual: true },
  }],
  ['3x3 upsample 2x, 2x12 image, 5 -> 8', {
    batch: 1,
    cin: 5,
    cout: 8,
    height: 2,
    width: 12,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true },
  }],
  ['3x3 pad 1, 9x9 image, 70 -> 72 (more than one 64-channel tile)', {
    batch: 1,
    cin: 70,
    cout: 72,
    height: 9,
    width: 9,
    kernel: 3,
    options: { padding: [1, 1, 1, 1] },
  }],
  // Rows of 16 or more take the 16-pixel variants (conv2d_wide_main.wgsl), partial blocks included.
  ['3x3 pad 1, 3x20 image, 6 -> 9, batch 2, residual', {
    batch: 2,
    cin: 6,
    cout: 9,
    height: 3,
    width: 20,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], residual: true },
  }],
  ['3x3 upsample 2x, 3x8 image (rows of 16), 5 -> 12, channelAdd', {
    batch: 2,
    cin: 5,
    cout: 12,
    height: 3,
    width: 8,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true, channelAdd: true },
  }],
  ['1x1, 3x4 image, 12 -> 9, residual, batch 3', {
    batch: 3,
    cin: 12,
    cout: 9,
    height: 3,
    width: 4,
    kernel: 1,
    options: { residual: true },
  }],
  ['1x1, 4x5 image, 3 -> 17, batch 2', { batch: 2, cin: 3, cout: 17, height: 4, width: 5, kernel: 1, options: {} }],
  // 189 columns: images that straddle 64- and 128-pixel tiles, a partial last tile of each width.
  ['3x3 pad 1, 7x9 image, 11 -> 70, batch 3 (images straddle the pixel tiles, two channel tiles)', {
    batch: 3,
    cin: 11,
    cout: 70,
    height: 7,
    width: 9,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], residual: true },
  }],
  ['3x3 stride 2, pad [0,0,1,1], 19x17 image (10x9 out), 5 -> 67, batch 2, channelAdd', {
    batch: 2,
    cin: 5,
    cout: 67,
    height: 19,
    width: 17,
    kernel: 3,
    options: { stride: 2, padding: [0, 0, 1, 1], channelAdd: true },
  }],
  ['3x3 upsample 2x, 7x6 image (14x12 out), 4 -> 9, batch 2', {
    batch: 2,
    cin: 4,
    cout: 9,
    height: 7,
    width: 6,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true },
  }],
];

/**
 * Runs conv case `c` through `kernels` on random inputs from `seed` (with the channelAdd and
 * residual tensors it asks for); returns the output, the float64 reference and the graph's nodes.
 */
async function runConvCase(c: ConvCase, kernels: ConvKernels, seed: number) {
  const rand = random(seed);
  const [outH, outW] = convOutputSize(c);
  const x = filled(c.batch * c.cin * c.height * c.width, rand);
  const w = weight(
    'w',
    c.kernel === 1 ? [c.cout, c.cin] : [c.cout, c.cin, c.kernel, c.kernel],
    rand,
    1 / Math.sqrt(c.cin * c.kernel * c.kernel),
  );
  const b = weight('b', [c.cout], rand);
  const channelAdd = c.options.channelAdd ? filled(c.batch * (c.cout + ADD_EXTRA), rand) : undefined;
  const residual = c.options.residual ? filled(c.batch * c.cout * outH * outW, rand) : undefined;
  const inputs: Record<string, { shape: number[]; data: Float32Array }> = {
    x: { shape: [c.batch, c.cin, c.height, c.width], data: x },
  };
  if (channelAdd) inputs.add = { shape: [c.batch, c.cout + ADD_EXTRA], data: channelAdd };
  if (residual) inputs.res = { shape: [c.batch, c.cout, outH, outW], data: residual };
  let nodes: readonly GraphNode[] = [];
  const actual = await runGraph(inputs, (g, t) => {
    const out = conv2d(g, 'conv', t.x, w, b, {
      ...convOptions(c),
      kernels,
      channelAdd: t.add,
      channelAddOffset: t.add ? ADD_OFFSET : undefined,
      residual: t.res,
    });
    nodes = g.nodes;
    return out;
  });
  return { actual, reference: conv2dReference(c, x, w.data, b.data, channelAdd, residual), nodes };
}

// Both kernel families run everywhere (the choice per adapter is only about speed).
for (const kernels of FAMILIES) {
  for (const [label, c] of CONV_CASES) {
    ops(`conv2d [${kernels}]: ${label}`, async () => {
      const { actual, reference } = await runConvCase(c, kernels, c.cin * 1000 + c.cout * 10 + c.kernel);
      expectClose(`conv [${kernels}] ${label}`, actual, reference, TOLERANCE);
    });
  }
}

// The register kernels' weights in 64 KiB uniform windows, one dispatch per window, on wide rows:
// each case asserts how many windows it takes and which kernel, so none passes through the
// storage path by mistake; narrow rows, 4x4 images and the general path read storage in one
// dispatch (conv2d.wgsl), however many input channels.
const WINDOWED_CASES: [string, ConvCase, { windows: number; shader: string }][] = [
  ['3x3 pad 1, 16x16, 120 -> 24 (one channel block per window), channelAdd + residual', {
    batch: 1,
    cin: 120,
    cout: 24,
    height: 16,
    width: 16,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], channelAdd: true, residual: true, outputScale: 0.5 },
  }, { windows: 3, shader: 'conv2d_wide_uniform_weights' }],
  ['3x3 upsample 2x, 8x8 -> 16x16, 120 -> 24', {
    batch: 1,
    cin: 120,
    cout: 24,
    height: 8,
    width: 8,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], upsample: true },
  }, { windows: 3, shader: 'conv2d_wide_uniform_weights' }],
  ['3x3 pad 1, 8x12 rows (narrow: 8 pixels per invocation, storage), 100 -> 17, batch 3', {
    batch: 3,
    cin: 100,
    cout: 17,
    height: 8,
    width: 12,
    kernel: 3,
    options: { padding: [1, 1, 1, 1] },
  }, { windows: 1, shader: 'conv2d' }],
  ['3x3 pad 1, 16x16, 240 -> 16 (two convs over 120 input channels each), channelAdd + residual + scale', {
    batch: 1,
    cin: 240,
    cout: 16,
    height: 16,
    width: 16,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], channelAdd: true, residual: true, outputScale: 0.5 },
  }, { windows: 4, shader: 'conv2d_wide_uniform_weights' }],
  ['3x3 pad 1, 4x4 image, 240 -> 16 (narrow: storage, not split)', {
    batch: 2,
    cin: 240,
    cout: 16,
    height: 4,
    width: 4,
    kernel: 3,
    options: { padding: [1, 1, 1, 1], residual: true },
  }, { windows: 1, shader: 'conv2d' }],
  ['3x3 stride 2, pad [0,0,1,1], 32x32, 60 -> 20 (the general path: storage)', {
    batch: 1,
    cin: 60,
    cout: 20,
    height: 32,
    width: 32,
    kernel: 3,
    options: { stride: 2, padding: [0, 0, 1, 1] },
  }, { windows: 1, shader: 'conv2d' }],
];

for (const [label, c, expected] of WINDOWED_CASES) {
  ops(`conv2d [registers], weights in uniform windows: ${label}`, async () => {
    const { actual, reference, nodes } = await runConvCase(c, 'registers', c.cin * 77 + c.cout);
    assert.is(nodes.length, expected.windows, 'dispatches (windows, or parts of the input)');
    assert.ok(nodes.every((n) => n.shader === expected.shader), nodes.map((n) => n.shader).join());
    expectClose(`conv [registers, ${expected.windows} dispatch${expected.windows > 1 ? 'es' : ''}] ${label}`, actual, reference, TOLERANCE);
  });
}

ops('concat: channels of two tensors, batch 3, 5x7', async () => {
  const rand = random(7);
  const a = filled(3 * 5 * 35, rand), b = filled(3 * 6 * 35, rand);
  const actual = await runGraph(
    { a: { shape: [3, 5, 5, 7], data: a }, b: { shape: [3, 6, 5, 7], data: b } },
    (g, t) => concatChannels(g, 'cat', t.a, t.b),
  );
  const expected = new Float32Array(3 * 11 * 35);
  for (let n = 0; n < 3; n++) {
    expected.set(a.subarray(n * 5 * 35, (n + 1) * 5 * 35), n * 11 * 35);
    expected.set(b.subarray(n * 6 * 35, (n + 1) * 6 * 35), n * 11 * 35 + 5 * 35);
  }
  expectClose('concat', actual, expected, 0);
});

/** Channel concatenation of two NCHW arrays on the CPU. */
function concatReference(a: Float32Array, b: Float32Array, n: number, ca: number, cb: number, spatial: number): Float32Array {
  const out = new Float32Array(n * (ca + cb) * spatial);
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * ca * spatial, (i + 1) * ca * spatial), i * (ca + cb) * spatial);
    out.set(b.subarray(i * cb * spatial, (i + 1) * cb * spatial), (i * (ca + cb) + ca) * spatial);
  }
  return out;
}

// The skip concatenation read in place: [x, skip] as one input, with groups and vec4 quads that
// straddle the two tensors.
const CONCAT_NORM_CASES: [string, number, number, number, number[]][] = [
  ['5 + 7 channels in 4 groups (one straddles), 4x4, batch 2', 5, 7, 4, [2, 4, 4]],
  ['5 + 7 channels in 4 groups, 3x3 (scalar rows), batch 3', 5, 7, 4, [3, 3, 3]],
];

for (const [label, ca, cb, groups, [n, h, w]] of CONCAT_NORM_CASES) {
  ops(`group_norm, input read as a concatenation: ${label}`, async () => {
    const rand = random(ca * 13 + cb);
    const a = filled(n * ca * h * w, rand, 4).map((v) => v + 3), b = filled(n * cb * h * w, rand, 2);
    const gamma = weight('gamma', [ca + cb], rand), beta = weight('beta', [ca + cb], rand);
    let nodes = 0;
    const actual = await runGraph({ a: { shape: [n, ca, h, w], data: a }, b: { shape: [n, cb, h, w], data: b } }, (g, t) => {
      const out = groupNorm(g, 'norm', t.a, gamma, beta, { groups, eps: 1e-5, silu: true, concat: t.b });
      nodes = g.nodes.length;
      return out;
    });
    assert.is(nodes, 1, 'one dispatch, no concat node');
    const x = concatReference(a, b, n, ca, cb, h * w);
    expectClose(
      `group_norm concat ${label}`,
      actual,
      groupNormReference(x, [n, ca + cb, h, w], gamma.data, beta.data, groups, 1e-5, true),
      TOLERANCE,
    );
  });
}

// [label, case (cin = ca + cb), ca, whether the register kernels read it in place]
const CONCAT_CONV_CASES: [string, ConvCase, number, boolean][] = [
  ['1x1, 2x6 image, 5 + 7 -> 9, batch 2', { batch: 2, cin: 12, cout: 9, height: 2, width: 6, kernel: 1, options: {} }, 5, true],
  [
    '1x1, 8x8 image (wide rows), 16 + 8 -> 24, residual',
    {
      batch: 1,
      cin: 24,
      cout: 24,
      height: 8,
      width: 8,
      kernel: 1,
      options: { residual: true },
    },
    16,
    true,
  ],
  ['1x1, 4x4 image (small), 6 + 10 -> 20, batch 2', { batch: 2, cin: 16, cout: 20, height: 4, width: 4, kernel: 1, options: {} }, 6, true],
  [
    '1x1, 3x5 image (planes not whole vec4s), 4 + 3 -> 5',
    { batch: 2, cin: 7, cout: 5, height: 3, width: 5, kernel: 1, options: {} },
    4,
    false,
  ],
  [
    '3x3 pad 1, 6x8 image, 4 + 3 -> 5',
    { batch: 2, cin: 7, cout: 5, height: 6, width: 8, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    4,
    false,
  ],
];

for (const kernels of FAMILIES) {
  for (const [label, c, ca, inPlace] of CONCAT_CONV_CASES) {
    ops(`conv2d [${kernels}], input read as a concatenation: ${label}`, async () => {
      const rand = random(c.cin * 999 + c.cout);
      const [outH, outW] = convOutputSize(c);
      const cb = c.cin - ca, spatial = c.height * c.width;
      const a = filled(c.batch * ca * spatial, rand), b = filled(c.batch * cb * spatial, rand);
      const w = weight(
        'w',
        c.kernel === 1 ? [c.cout, c.cin] : [c.cout, c.cin, c.kernel, c.kernel],
        rand,
        1 / Math.sqrt(c.cin * c.kernel ** 2),
      );
      const bias = weight('b', [c.cout], rand);
      const residual = c.options.residual ? filled(c.batch * c.cout * outH * outW, rand) : undefined;
      const inputs: Record<string, { shape: number[]; data: Float32Array }> = {
        a: { shape: [c.batch, ca, c.height, c.width], data: a },
        b: { shape: [c.batch, cb, c.height, c.width], data: b },
      };
      if (residual) inputs.res = { shape: [c.batch, c.cout, outH, outW], data: residual };
      let nodes = 0;
      const actual = await runGraph(inputs, (g, t) => {
        const out = conv2d(g, 'conv', t.a, w, bias, { ...convOptions(c), kernels, concat: t.b, residual: t.res });
        nodes = g.nodes.length;
        return out;
      });
      assert.is(nodes, isTiled(kernels) || inPlace ? 1 : 2, 'a concat node only where the kernel cannot read two tensors');
      const x = concatReference(a, b, c.batch, ca, cb, spatial);
      expectClose(`conv [${kernels}] concat ${label}`, actual, conv2dReference(c, x, w.data, bias.data, undefined, residual), TOLERANCE);
    });
  }
}

// GroupNorm (+ SiLU) as the conv's prologue: the tiled kernel normalises while it loads (one
// node) where the fusion rule allows, a group_norm node comes first otherwise (and always for the
// register kernels). [label, case, groups, silu, channels of the first input (the rest are a
// concatenated second one), whether the tiled kernel fuses it]
const NORM_CONV_CASES: [string, ConvCase, number, boolean, number, boolean][] = [
  [
    '3x3 pad 1, 6x7 image, 15 channels in 3 groups -> 10, SiLU, batch 2',
    { batch: 2, cin: 15, cout: 10, height: 6, width: 7, kernel: 3, options: { padding: [1, 1, 1, 1], outputScale: 0.5 } },
    3,
    true,
    15,
    true,
  ],
  [
    '3x3 stride 2, pad [0, 0, 1, 1], 9x9 image, 12 channels in 4 groups -> 70, no SiLU',
    { batch: 1, cin: 12, cout: 70, height: 9, width: 9, kernel: 3, options: { stride: 2, padding: [0, 0, 1, 1] } },
    4,
    false,
    12,
    true,
  ],
  [
    '3x3 upsample 2x, 3x5 image, 8 channels in 2 groups -> 6, SiLU, channelAdd, batch 3',
    { batch: 3, cin: 8, cout: 6, height: 3, width: 5, kernel: 3, options: { padding: [1, 1, 1, 1], upsample: true, channelAdd: true } },
    2,
    true,
    8,
    true,
  ],
  [
    // 64 channels in 32 groups over 4x4 images: each 64-column tile holds 4 images, 128 pairs.
    '3x3 pad 1, 4x4 image, 64 channels in 32 groups -> 9, SiLU, batch 5 (tiles span images)',
    { batch: 5, cin: 64, cout: 9, height: 4, width: 4, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    32,
    true,
    64,
    true,
  ],
  [
    // 15-pixel images: tiles start and end inside images.
    '1x1, 3x5 image, 12 channels in 4 groups -> 20, no SiLU, residual, batch 6',
    { batch: 6, cin: 12, cout: 20, height: 3, width: 5, kernel: 1, options: { residual: true } },
    4,
    false,
    12,
    true,
  ],
  [
    '3x3 pad 1, 5x6 image, [5, 7] concatenated in 4 groups (one straddles) -> 8, SiLU, batch 2',
    { batch: 2, cin: 12, cout: 8, height: 5, width: 6, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    4,
    true,
    5,
    true,
  ],
  [
    // 210 columns: tiles of either width start and end inside images.
    '3x3 pad 1, 6x7 image, 16 channels in 4 groups -> 66, SiLU, batch 5',
    { batch: 5, cin: 16, cout: 66, height: 6, width: 7, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    4,
    true,
    16,
    true,
  ],
  [
    // 400 pixels per image, over the rule's bound for a 1x1 conv (256 for 'tiled', 384 for
    // 'tiled-wide'): a separate group_norm node.
    '1x1, 20x20 image, 8 channels in 2 groups -> 4, SiLU (not fused: large image, small conv)',
    { batch: 1, cin: 8, cout: 4, height: 20, width: 20, kernel: 1, options: {} },
    2,
    true,
    8,
    false,
  ],
];

for (const kernels of FAMILIES) {
  for (const [label, c, groups, silu, ca, fusedTiled] of NORM_CONV_CASES) {
    ops(`conv2d [${kernels}] of GroupNorm(input): ${label}`, async () => {
      const rand = random(c.cin * 577 + c.cout * 3 + groups);
      const [outH, outW] = convOutputSize(c);
      const cb = c.cin - ca, spatial = c.height * c.width;
      // An offset mean checks that the variance does not cancel catastrophically.
      const a = filled(c.batch * ca * spatial, rand, 4).map((v) => v + 3);
      const b = filled(c.batch * cb * spatial, rand, 4).map((v) => v + 3);
      const gamma = weight('gamma', [c.cin], rand), beta = weight('beta', [c.cin], rand);
      const w = weight(
        'w',
        c.kernel === 1 ? [c.cout, c.cin] : [c.cout, c.cin, c.kernel, c.kernel],
        rand,
        1 / Math.sqrt(c.cin * c.kernel ** 2),
      );
      const bias = weight('b', [c.cout], rand);
      const channelAdd = c.options.channelAdd ? filled(c.batch * (c.cout + ADD_EXTRA), rand) : undefined;
      const residual = c.options.residual ? filled(c.batch * c.cout * outH * outW, rand) : undefined;
      const inputs: Record<string, { shape: number[]; data: Float32Array }> = { a: { shape: [c.batch, ca, c.height, c.width], data: a } };
      if (cb > 0) inputs.b = { shape: [c.batch, cb, c.height, c.width], data: b };
      if (channelAdd) inputs.add = { shape: [c.batch, c.cout + ADD_EXTRA], data: channelAdd };
      if (residual) inputs.res = { shape: [c.batch, c.cout, outH, outW], data: residual };
      const kinds: string[] = [];
      const actual = await runGraph(inputs, (g, t) => {
        const out = conv2d(g, 'conv', t.a, w, bias, {
          ...c.options,
          kernels,
          concat: t.b,
          channelAdd: t.add,
          channelAddOffset: t.add ? ADD_OFFSET : undefined,
          residual: t.res,
          groupNorm: { name: 'norm', gamma, beta, groups, eps: 1e-5, silu },
        });
        kinds.push(...g.nodes.map((node) => node.kind));
        return out;
      });
      const fused = isTiled(kernels) && fusedTiled;
      console.log(`    nodes: ${kinds.join(', ')}`);
      assert.is(kinds.length, fused ? 1 : 2, fused ? 'the norm runs inside the conv' : 'a group_norm node, then the conv');
      const x = cb > 0 ? concatReference(a, b, c.batch, ca, cb, spatial) : a;
      const normed = groupNormReference(x, [c.batch, c.cin, c.height, c.width], gamma.data, beta.data, groups, 1e-5, silu);
      expectClose(
        `conv [${kernels}] norm ${label}`,
        actual,
        conv2dReference(c, normed, w.data, bias.data, channelAdd, residual),
        TOLERANCE,
      );
    });
  }
}

// A resnet's conv2 with its conv_shortcut: + conv1x1(x) + bias. The tiled kernel folds the
// shortcut into its own accumulation where the device has 10 storage buffers per stage; with
// WebGPU's default 8 (and for the register kernels) the shortcut is a node of its own.
// [label, case, shortcut input channels (first tensor, concatenated second), GroupNorm groups (0: none)]
const SHORTCUT_CASES: [string, ConvCase, [number, number], number][] = [
  [
    '3x3 pad 1 of GroupNorm+SiLU, 6x5 image, 8 -> 8, shortcut from [6, 4], batch 2, output scale 0.5',
    { batch: 2, cin: 8, cout: 8, height: 6, width: 5, kernel: 3, options: { padding: [1, 1, 1, 1], outputScale: 0.5 } },
    [6, 4],
    4,
  ],
  [
    '3x3 pad 1, 4x4 image, 5 -> 70, shortcut from 3 channels, batch 5',
    { batch: 5, cin: 5, cout: 70, height: 4, width: 4, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    [3, 0],
    0,
  ],
  [
    // 180 columns: the second image starts inside a tile of either width.
    '3x3 pad 1 of GroupNorm+SiLU, 9x10 image, 6 -> 66, shortcut from [5, 3], batch 2',
    { batch: 2, cin: 6, cout: 66, height: 9, width: 10, kernel: 3, options: { padding: [1, 1, 1, 1] } },
    [5, 3],
    3,
  ],
];

for (const kernels of FAMILIES) {
  for (const storageLimit of ['device', 8] as const) {
    if (kernels === 'registers' && storageLimit === 8) continue;
    for (const [label, c, [sa, sb], groups] of SHORTCUT_CASES) {
      const limitLabel = storageLimit === 8 ? ', 8 storage buffers' : '';
      ops(`conv2d [${kernels}${limitLabel}] with a conv_shortcut: ${label}`, async () => {
        const device = (await gpu()).device;
        const maxStorageBuffers = storageLimit === 8 ? 8 : device.limits.maxStorageBuffersPerShaderStage;
        const rand = random(c.cin * 31 + c.cout * 7 + sa + sb);
        const spatial = c.height * c.width;
        const h = filled(c.batch * c.cin * spatial, rand, 2).map((v) => v + 1);
        const xa = filled(c.batch * sa * spatial, rand), xb = filled(c.batch * sb * spatial, rand);
        const gamma = weight('gamma', [c.cin], rand), beta = weight('beta', [c.cin], rand);
        const w = weight('w', [c.cout, c.cin, 3, 3], rand, 1 / Math.sqrt(c.cin * 9));
        const bias = weight('b', [c.cout], rand);
        const ws = weight('ws', [c.cout, sa + sb], rand, 1 / Math.sqrt(sa + sb));
        const bs = weight('bs', [c.cout], rand);
        const inputs: Record<string, { shape: number[]; data: Float32Array }> = {
          h: { shape: [c.batch, c.cin, c.height, c.width], data: h },
          xa: { shape: [c.batch, sa, c.height, c.width], data: xa },
        };
        if (sb > 0) inputs.xb = { shape: [c.batch, sb, c.height, c.width], data: xb };
        const nodes: GraphNode[] = [];
        const actual = await runGraph(inputs, (g, t) => {
          const out = conv2d(g, 'conv2', t.h, w, bias, {
            ...convOptions(c),
            kernels,
            maxStorageBuffers,
            groupNorm: groups ? { name: 'norm2', gamma, beta, groups, eps: 1e-5, silu: true } : undefined,
            shortcut: { name: 'conv_shortcut', input: t.xa, concat: t.xb, weight: ws, bias: bs },
          });
          nodes.push(...g.nodes);
          return out;
        });
        const fused = isTiled(kernels) && maxStorageBuffers >= 10;
        console.log(`    maxStorageBuffers ${maxStorageBuffers}, nodes: ${nodes.map((node) => node.kind).join(', ')}`);
        if (fused) assert.is(nodes.length, 1, 'the shortcut runs inside conv2');
        else {assert.ok(
            nodes.some((node) => node.name === 'conv_shortcut' && node.kind === 'conv1x1'),
            'conv_shortcut is a node of its own',
          );}
        assert.is(
          nodes.some((node) => isTiled(kernels) && node.shader === TILED_SHAPES[kernels].shortcutShader),
          fused,
          'the 10-buffer kernel only where the device has them',
        );
        const x = sb > 0 ? concatReference(xa, xb, c.batch, sa, sb, spatial) : xa;
        const shortcut = new Float32Array(projectReference(x, c.batch, sa + sb, spatial, ws, bs));
        const input = groups ? groupNormReference(h, [c.batch, c.cin, c.height, c.width], gamma.data, beta.data, groups, 1e-5, true) : h;
        expectClose(
          `conv [${kernels}${limitLabel}] shortcut ${label}`,
          actual,
          conv2dReference(c, input, w.data, bias.data, undefined, shortcut),
          TOLERANCE,
        );
      });
    }
  }
}

ops('the GroupNorm fusion rule: image sizes the tiled conv normalises itself, and those it leaves to a node', () => {
  const fuses = (batch: number, channels: number, groups: number, size: number, taps: number) =>
    tiledConvFusesGroupNorm({ batch, channels, groups, srcPixels: size * size, outPixels: size * size, taps });
  // A 3x3 conv: reads of the statistics at most 4x the staged ones, up to 48x48 (2304 pixels).
  assert.ok(fuses(8, 128, 32, 32, 9) && fuses(1, 64, 32, 48, 9));
  assert.not.ok(fuses(1, 64, 32, 64, 9));
  // A 1x1 conv stages 9x less: up to 16x16.
  assert.ok(fuses(2, 128, 32, 16, 1));
  assert.not.ok(fuses(1, 128, 32, 17, 1));
  // 2x2 images: a tile spans 16 of them, 16 * 32 (image, group) pairs are more than a workgroup holds.
  assert.not.ok(fuses(16, 64, 32, 2, 9));
  assert.ok(fuses(16, 64, 8, 2, 9));
});

ops('the GroupNorm fusion rule for tiled-wide: its 128-pixel tiles stage more and span more images', () => {
  const fuses = (batch: number, channels: number, groups: number, size: number, taps: number) =>
    tiledConvFusesGroupNorm({ batch, channels, groups, srcPixels: size * size, outPixels: size * size, taps }, 'tiled-wide');
  const fusesTiled = (batch: number, channels: number, groups: number, size: number, taps: number) =>
    tiledConvFusesGroupNorm({ batch, channels, groups, srcPixels: size * size, outPixels: size * size, taps });
  // A 1x1 conv: a tile stages (64 + 128) / (64 + 64) times as much, so up to 384 pixels (19x19) fuse.
  assert.ok(fuses(1, 128, 32, 19, 1) && !fusesTiled(1, 128, 32, 19, 1));
  assert.not.ok(fuses(1, 128, 32, 20, 1));
  // 2x2 images at batch 64: a 128-pixel tile spans 32 of them, 32 * 16 (image, group) pairs are
  // more than a workgroup holds; a 64-pixel tile's 16 * 16 are not.
  assert.ok(fusesTiled(64, 64, 16, 2, 9));
  assert.not.ok(fuses(64, 64, 16, 2, 9));
  assert.ok(fuses(64, 64, 8, 2, 9));
});

ops('conv2d refuses a GroupNorm or a shortcut that does not fit, by name', () => {
  const g = new Graph();
  const x = g.input('x', [2, 6, 4, 4]);
  const rand = random(5);
  const w = weight('w', [4, 6, 3, 3], rand), b = weight('b', [4], rand);
  const gamma = weight('gamma', [6], rand), beta = weight('beta', [6], rand);
  assert.throws(
    () =>
      conv2d(g, 'c1', x, w, b, {
        padding: [1, 1, 1, 1],
        kernels: 'tiled',
        groupNorm: { name: 'n', gamma, beta, groups: 4, eps: 1e-5, silu: true },
      }),
    /c1: 6 input channels are not divisible into 4 groups/,
  );
  const small = g.input('small', [2, 3, 2, 2]);
  const ws = weight('ws', [4, 3], rand), bs = weight('bs', [4], rand);
  assert.throws(
    () =>
      conv2d(g, 'c2', x, w, b, { padding: [1, 1, 1, 1], kernels: 'tiled', shortcut: { name: 's', input: small, weight: ws, bias: bs } }),
    /s: a shortcut input of shape \[2,3,2,2\] does not match the output \[2, 4, 4, 4\]/,
  );
  const sc = g.input('sc', [2, 5, 4, 4]);
  assert.throws(
    () => conv2d(g, 'c3', x, w, b, { padding: [1, 1, 1, 1], kernels: 'tiled', shortcut: { name: 's', input: sc, weight: ws, bias: bs } }),
    /s: a 1x1 shortcut from 5 to 4 channels needs weights \[4, 5\], got \[4,3\]/,
  );
});

const NORM_CASES: [string, number[], number, boolean][] = [
  ['32 channels in 8 groups, 5x7, batch 3, SiLU', [3, 32, 5, 7], 8, true],
  ['64 channels in 32 groups, 16x16, batch 2', [2, 64, 16, 16], 32, false],
  ['6 channels in 3 groups, 1x1, batch 2, SiLU', [2, 6, 1, 1], 3, true],
  ['128 channels in 32 groups, 32x32 (large groups), SiLU', [1, 128, 32, 32], 32, true],
];

for (const [label, shape, groups, silu] of NORM_CASES) {
  ops(`group_norm: ${label}`, async () => {
    const rand = random(shape[1] * 31 + groups);
    // An offset mean checks that the variance does not cancel catastrophically.
    const x = filled(shape.reduce((a, b) => a * b, 1), rand, 4).map((v) => v + 3);
    const gamma = weight('gamma', [shape[1]], rand), beta = weight('beta', [shape[1]], rand);
    const actual = await runGraph({ x: { shape, data: x } }, (g, t) => groupNorm(g, 'norm', t.x, gamma, beta, { groups, eps: 1e-5, silu }));
    expectClose(`group_norm ${label}`, actual, groupNormReference(x, shape, gamma.data, beta.data, groups, 1e-5, silu), TOLERANCE);
  });
}

const ATTENTION_CASES: [string, number[], number, number][] = [
  ['1 head, 16 channels, 4x4, batch 2', [2, 16, 4, 4], 1, 0.5],
  ['4 heads of 8, 32 channels, 5x7, batch 3', [3, 32, 5, 7], 4, 1],
  ['2 heads of 12, 24 channels, 16x16 (L = 256)', [1, 24, 16, 16], 2, 1],
];

for (const [label, shape, heads, rescale] of ATTENTION_CASES) {
  ops(`attention: ${label}`, async () => {
    const [n, c, h, wd] = shape;
    const L = h * wd, d = c / heads;
    const rand = random(c * 7 + heads);
    const x = filled(n * c * L, rand);
    const proj = (name: string) => ({
      weight: weight(`${name}.w`, [c, c], rand, 1 / Math.sqrt(c)),
      bias: weight(`${name}.b`, [c], rand, 0.1),
    });
    const w = {
      norm: { weight: weight('gn.w', [c], rand), bias: weight('gn.b', [c], rand) },
      query: proj('q'),
      key: proj('k'),
      value: proj('v'),
      out: proj('o'),
    };
    const groups = 4;
    const actual = await runGraph(
      { x: { shape, data: x } },
      (g, t) => spatialAttention(g, 'attn', t.x, w, { heads, groups, eps: 1e-5, rescaleOutputFactor: rescale }),
    );

    const normed = groupNormReference(x, shape, w.norm.weight.data, w.norm.bias.data, groups, 1e-5, false);
    const q = projectReference(normed, n, c, L, w.query.weight, w.query.bias);
    const k = projectReference(normed, n, c, L, w.key.weight, w.key.bias);
    const v = projectReference(normed, n, c, L, w.value.weight, w.value.bias);
    const attended = new Float64Array(n * c * L);
    const scores = new Float64Array(L);
    for (let b = 0; b < n; b++) {
      for (let hd = 0; hd < heads; hd++) {
        const base = (b * c + hd * d) * L;
        for (let i = 0; i < L; i++) {
          let max = -Infinity;
          for (let j = 0; j < L; j++) {
            let s = 0;
            for (let e = 0; e < d; e++) s += q[base + e * L + i] * k[base + e * L + j];
            scores[j] = s / Math.sqrt(d);
            max = Math.max(max, scores[j]);
          }
          let sum = 0;
          for (let j = 0; j < L; j++) sum += scores[j] = Math.exp(scores[j] - max);
          for (let e = 0; e < d; e++) {
            let acc = 0;
            for (let j = 0; j < L; j++) acc += scores[j] * v[base + e * L + j];
            attended[base + e * L + i] = acc / sum;
          }
        }
      }
    }
    const projected = projectReference(attended, n, c, L, w.out.weight, w.out.bias);
    const expected = new Float32Array(n * c * L).map((_, i) => (projected[i] + x[i]) / rescale);
    expectClose(`attention ${label}`, actual, expected, TOLERANCE);
  });
}

// The attention kernel alone, on q/k/v given directly: positions that are not whole vec4s (L = 35,
// L = 1), head dims that are not (D = 3, 5, 17), keys that do not fill the last step of 16,
// several heads and images, the emoji32 shapes (D = 128 at L = 256 and 16), and large scores
// (the running maximum grows across steps).
const ATTENTION_CORE_CASES: [string, number[], number, number][] = [
  ['L = 1, 2 heads of 3, batch 2', [2, 6, 1, 1], 2, 1],
  ['L = 35 (5x7), 3 heads of 5, batch 2', [2, 15, 5, 7], 3, 1],
  ['L = 20 (4x5), 2 heads of 8', [1, 16, 4, 5], 2, 1],
  ['L = 36 (6x6), 1 head of 17, large scores', [1, 17, 6, 6], 1, 6],
  ['L = 16 (4x4), 1 head of 128, batch 2 (emoji32 mid block)', [2, 128, 4, 4], 1, 1],
  ['L = 256 (16x16), 1 head of 128 (emoji32 16x16 level)', [1, 128, 16, 16], 1, 1],
];

function attentionReference(qkv: Float32Array, shape: number[], heads: number): Float32Array {
  const [n, c, h, wd] = shape;
  const L = h * wd, d = c / heads;
  const out = new Float32Array(n * c * L);
  const scores = new Float64Array(L);
  for (let b = 0; b < n; b++) {
    for (let hd = 0; hd < heads; hd++) {
      const plane = (part: number, e: number) => ((b * 3 + part) * c + hd * d + e) * L;
      for (let i = 0; i < L; i++) {
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let e = 0; e < d; e++) s += qkv[plane(0, e) + i] * qkv[plane(1, e) + j];
          scores[j] = s / Math.sqrt(d);
          max = Math.max(max, scores[j]);
        }
        let sum = 0;
        for (let j = 0; j < L; j++) sum += scores[j] = Math.exp(scores[j] - max);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += scores[j] * qkv[plane(2, e) + j];
          out[(b * c + hd * d + e) * L + i] = acc / sum;
        }
      }
    }
  }
  return out;
}

for (const kernels of FAMILIES) {
  for (const [label, shape, heads, scale] of ATTENTION_CORE_CASES) {
    ops(`attention kernel [${kernels}]: ${label}`, async () => {
      const [n, c, h, wd] = shape;
      const rand = random(c * 13 + h * wd + heads);
      const qkv = filled(n * 3 * c * h * wd, rand, scale);
      let nodes = 0;
      const actual = await runGraph({ qkv: { shape: [n, 3 * c, h, wd], data: qkv } }, (g, t) => {
        const out = attentionCore(g, 'attention', t.qkv, { heads, kernels });
        nodes = g.nodes.length;
        return out;
      });
      assert.is(nodes, 1, 'one dispatch');
      expectClose(`attention [${kernels}] ${label}`, actual, attentionReference(qkv, shape, heads), TOLERANCE);
    });
  }
}

ops('attention kernel: inputs that are not q, k and v of whole heads are refused by name', () => {
  const g = new Graph();
  assert.throws(
    () => attentionCore(g, 'attn', g.input('a', [1, 10, 4, 4]), { heads: 1 }),
    /attn: 10 channels are not q, k and v side by side/,
  );
  assert.throws(() => attentionCore(g, 'attn', g.input('b', [1, 12, 4, 4]), { heads: 3 }), /attn: 4 channels do not split into 3 heads/);
});

ops('kernel choice: a software adapter gets the register kernels, uniform windows on llvmpipe only', async () => {
  const g = await gpu();
  const info = g.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const software = info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(g.adapterName);
  console.log(`    ${g.adapterName}: ${preferredKernels(g.adapter)}`);
  assert.is(isSoftwareAdapter(g.adapter), software);
  const adapter = (info: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean }) =>
    ({ info: { vendor: '', architecture: '', device: '', description: '', ...info } }) as unknown as GPUAdapter;
  assert.is(preferredKernels(adapter({ description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })), 'registers');
  assert.is(preferredKernels(adapter({ vendor: 'google', architecture: 'swiftshader' })), 'registers-storage');
  assert.is(preferredKernels(adapter({ vendor: 'intel', isFallbackAdapter: true })), 'registers-storage');
  assert.is(preferredKernels(adapter({ vendor: 'nvidia', architecture: 'hopper' })), 'tiled');
});

// The GPU family through a whole model (multi-head attention, six levels), on whatever adapter.
ops('tiny64_legacy with the tiled kernels matches diffusers', async () => {
  const dir = '../shared/golden/tiny64_legacy';
  const model = readUNet({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
  });
  const golden = readGolden('tiny64_unet.safetensors');
  const t = goldenI32(golden, 'input.t');
  const unet = await UNet.compile(await gpu(), model, { batch: t.length, kernels: 'tiled' });
  try {
    const eps = await unet.forward(goldenF32(golden, 'input.x'), t);
    expectClose('tiny64 [tiled] output.eps', eps, goldenF32(golden, 'output.eps'), 2e-4);
  } finally {
    unet.destroy();
  }
});

ops('tiled-wide-subgroups on a device without subgroups: a clear refusal naming the feature', async () => {
  const adapter = await (await gpu()).instance.requestAdapter();
  if (!adapter) throw new Error('no second adapter');
  const bare = await adapter.requestDevice();
  try {
    assert.not.ok(kernelsRunOn('tiled-wide-subgroups', bare));
    assert.ok(kernelsRunOn('tiled-wide', bare));
    const g = new Graph();
    const x = g.input('x', [1, 3, 4, 4]);
    const rand = random(3);
    g.markOutput(conv2d(g, 'conv', x, weight('w', [5, 3, 3, 3], rand), weight('b', [5], rand), {
      padding: [1, 1, 1, 1],
      kernels: 'tiled-wide-subgroups',
    }));
    const device = { ...(await gpu()), device: bare };
    let message = '';
    try {
      (await CompiledGraph.compile(device, g, { label: 'no-subgroups' })).destroy();
    } catch (e) {
      message = (e as Error).message;
    }
    console.log(`    refused: ${message}`);
    assert.match(message, /shader conv2d_tiled_wide_subgroups needs the device feature 'subgroups', which this device lacks/);
  } finally {
    bare.destroy();
  }
});

ops.run();
