// The three token attention kernels: the register-blocked one (token_attention_registers*.wgsl, what
// the software drivers' conv families take), the tiled one (token_attention_tiled*.wgsl,
// FlashAttention-style, the GPUs') and the one-invocation-per-query kernel (token_attention.wgsl, for
// graphs with no family: the text encoder's). All against a float64 reference on small cases
// (partial query blocks and key tiles, cross-attention over 77 keys, the causal mask, q/k/v as column
// ranges of fused projections, several images and heads), then at 4096 tokens with SD's head dims
// 40, 64, 80 and 160 and 4096 x 77 cross-attention, against each other and against float64 on
// sampled queries; which kernel is picked, for the op and in SD 1.5's and 2.1's UNet graphs. Every
// comparison prints its error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { Precision } from '../src/gpu/shader_source.ts';
import { CompiledGraph } from '../src/graph/executor.ts';
import { Graph, type Tensor } from '../src/graph/graph.ts';
import { buildConditionalUNetGraph } from '../src/models/unet_2d_condition.ts';
import { parseConditionalUNetConfig } from '../src/models/unet_2d_condition_config.ts';
import type { WeightSource } from '../src/models/weights.ts';
import { fromActivations, toActivations } from '../src/ops/cast.ts';
import type { ConvKernels } from '../src/ops/conv2d.ts';
import { attentionShader, tokenAttentionCore, type TokenColumns, tokenColumns } from '../src/ops/token_attention.ts';
import { expectClose } from './util/compare.ts';
import { mulberry32 } from './util/random.ts';
import { gpu } from './util/shared_gpu.ts';

/** The brief's bound for f32 against float64 and between the kernels. */
const TOLERANCE = 1e-5;
/** f16 storage of q, k, v and the output (11-bit significands), arithmetic in f32. */
const F16_TOLERANCE = 2e-3;
const SD_CONFIGS = '../shared/golden/sd/configs';

/**
 * Uniform values in [-scale/2, scale/2). q and k at scale 5 give scores of standard deviation ~2
 * after the 1/sqrt(d) scaling (a softmax far from uniform, its largest weights ~e^6 above the mean).
 */
function filled(n: number, seed: number, scale: number): Float32Array {
  const uniform = mulberry32(seed);
  return new Float32Array(n).map(() => (uniform() - 0.5) * scale);
}

/** One attention problem: q from one [batch, queries, width] tensor, k and v side by side in another (or all three in one). */
interface Problem {
  label: string;
  batch: number;
  heads: number;
  headDim: number;
  queries: number;
  /** null: self-attention, q, k and v side by side in one tensor [batch, queries, 3 * width]. */
  keys: number | null;
  causal?: boolean;
}

interface Layout {
  width: number;
  keys: number;
  /** The tensors' data and, per part, [tensor index, stride, offset]. */
  data: Float32Array[];
  shapes: number[][];
  parts: Record<'q' | 'k' | 'v', { tensor: number; stride: number; offset: number }>;
}

function layoutOf(p: Problem, seed: number): Layout {
  const width = p.heads * p.headDim;
  if (p.keys === null) {
    // Columns [q | k | v], as a fused qkv projection holds them; v at scale 2.
    const stride = 3 * width;
    const qkv = filled(p.batch * p.queries * stride, seed, 5);
    const v = filled(p.batch * p.queries * width, seed + 1, 2);
    for (let r = 0; r < p.batch * p.queries; r++) qkv.set(v.subarray(r * width, (r + 1) * width), r * stride + 2 * width);
    return {
      width,
      keys: p.queries,
      data: [qkv],
      shapes: [[p.batch, p.queries, stride]],
      parts: { q: { tensor: 0, stride, offset: 0 }, k: { tensor: 0, stride, offset: width }, v: { tensor: 0, stride, offset: 2 * width } },
    };
  }
  // Cross-attention: q alone, k and v side by side over the context, as multiHeadAttention's kv_proj.
  const kvStride = 2 * width;
  const kv = filled(p.batch * p.keys * kvStride, seed + 2, 5);
  const v = filled(p.batch * p.keys * width, seed + 3, 2);
  for (let r = 0; r < p.batch * p.keys; r++) kv.set(v.subarray(r * width, (r + 1) * width), r * kvStride + width);
  return {
    width,
    keys: p.keys,
    data: [filled(p.batch * p.queries * width, seed, 5), kv],
    shapes: [[p.batch, p.queries, width], [p.batch, p.keys, kvStride]],
    parts: {
      q: { tensor: 0, stride: width, offset: 0 },
      k: { tensor: 1, stride: kvStride, offset: 0 },
      v: { tensor: 1, stride: kvStride, offset: width },
    },
  };
}

/**
 * softmax(q k^T / sqrt(d)) v in float64 for the given (image, head, query) rows of `p`, each
 * [headDim] values, in the order given.
 */
function reference(p: Problem, layout: Layout, rows: [number, number, number][]): Float64Array {
  const d = p.headDim;
  const out = new Float64Array(rows.length * d);
  const scores = new Float64Array(layout.keys);
  const at = (part: 'q' | 'k' | 'v', image: number, token: number, head: number, e: number) => {
    const { tensor, stride, offset } = layout.parts[part];
    const tokens = part === 'q' ? p.queries : layout.keys;
    return layout.data[tensor][(image * tokens + token) * stride + offset + head * d + e];
  };
  for (const [r, [image, head, query]] of rows.entries()) {
    const keys = p.causal ? query + 1 : layout.keys;
    let peak = -Infinity;
    for (let j = 0; j < keys; j++) {
      let s = 0;
      for (let e = 0; e < d; e++) s += at('q', image, query, head, e) * at('k', image, j, head, e);
      scores[j] = s / Math.sqrt(d);
      peak = Math.max(peak, scores[j]);
    }
    let total = 0;
    for (let j = 0; j < keys; j++) total += scores[j] = Math.exp(scores[j] - peak);
    for (let e = 0; e < d; e++) {
      let acc = 0;
      for (let j = 0; j < keys; j++) acc += scores[j] * at('v', image, j, head, e);
      out[r * d + e] = acc / total;
    }
  }
  return out;
}

/** The (image, head, query) rows' values of an output [batch, queries, heads * headDim]. */
function pickRows(p: Problem, out: Float32Array, rows: [number, number, number][]): Float32Array {
  const d = p.headDim;
  const picked = new Float32Array(rows.length * d);
  for (const [r, [image, head, query]] of rows.entries()) {
    const start = (image * p.queries + query) * p.heads * d + head * d;
    picked.set(out.subarray(start, start + d), r * d);
  }
  return picked;
}

/** Runs `p` through each of `families` in one graph (their nodes side by side); the outputs in order. */
async function runKernels(
  p: Problem,
  layout: Layout,
  families: (ConvKernels | undefined)[],
  precision: Precision = 'f32',
): Promise<Float32Array[]> {
  const g = new Graph(precision);
  const inputs = layout.shapes.map((shape, i) => g.input(`input${i}`, shape));
  const tensors = inputs.map((t) => toActivations(g, `${t.name}.cast`, t));
  const columns = (part: 'q' | 'k' | 'v'): TokenColumns => {
    const { tensor, offset } = layout.parts[part];
    return tokenColumns(tensors[tensor], offset, layout.width);
  };
  const parts = [columns('q'), columns('k'), columns('v')];
  const outputs: Tensor[] = families.map((kernels) => {
    const out = tokenAttentionCore(g, `attention.${kernels ?? 'simple'}`, parts[0], parts[1], parts[2], {
      heads: p.heads,
      causal: p.causal,
      kernels,
    });
    return g.markOutput(fromActivations(g, `attention.${kernels ?? 'simple'}.f32`, out));
  });
  const shaders = g.nodes.filter((n) => n.kind === 'token_attention').map((n) => n.shader);
  assert.equal(shaders, families.map((kernels) => attentionShader(kernels, p.headDim, parts)));
  const compiled = await CompiledGraph.compile(await gpu(), g, { label: 'attention-tiled-test' });
  try {
    for (const [i, data] of layout.data.entries()) compiled.write(`input${i}`, data);
    await compiled.run();
    return await Promise.all(outputs.map((t) => compiled.read(t.name)));
  } finally {
    compiled.destroy();
  }
}

/** Every (image, head, query) of `p`. */
function allRows(p: Problem): [number, number, number][] {
  const rows: [number, number, number][] = [];
  for (let image = 0; image < p.batch; image++) {
    for (let head = 0; head < p.heads; head++) {
      for (let query = 0; query < p.queries; query++) rows.push([image, head, query]);
    }
  }
  return rows;
}

const attention = suite('token attention kernels');

attention(
  'small cases: the three kernels against float64 (partial blocks and tiles, cross-attention, causal, fused q/k/v, f16)',
  async () => {
    const problems: Problem[] = [
      // 100 queries: a full block of 64 and a partial one; 77 keys: two full tiles of 32 and 13.
      { label: 'self 2x100, 2 heads x 40', batch: 2, heads: 2, headDim: 40, queries: 100, keys: null },
      { label: 'cross 2x100x77, 2 heads x 40', batch: 2, heads: 2, headDim: 40, queries: 100, keys: 77 },
      { label: 'cross 1x70x77, 3 heads x 64', batch: 1, heads: 3, headDim: 64, queries: 70, keys: 77 },
      { label: 'cross 2x65x77, 2 heads x 80', batch: 2, heads: 2, headDim: 80, queries: 65, keys: 77 },
      { label: 'cross 1x64x77, 2 heads x 160', batch: 1, heads: 2, headDim: 160, queries: 64, keys: 77 },
      // Fewer keys than one tile, and head dims off the 8-dim steps and 16-column blocks.
      { label: 'cross 1x33x5, 2 heads x 12', batch: 1, heads: 2, headDim: 12, queries: 33, keys: 5 },
      { label: 'self 1x77, 2 heads x 150', batch: 1, heads: 2, headDim: 150, queries: 77, keys: null },
      // The text encoder's mask: key tiles past a block's last query skipped, the rest masked per query.
      { label: 'causal self 2x77, 4 heads x 16', batch: 2, heads: 4, headDim: 16, queries: 77, keys: null, causal: true },
      { label: 'causal self 1x150, 1 head x 40', batch: 1, heads: 1, headDim: 40, queries: 150, keys: null, causal: true },
    ];
    for (const [i, p] of problems.entries()) {
      const layout = layoutOf(p, 100 + 10 * i);
      const rows = allRows(p);
      const expected = Float32Array.from(reference(p, layout, rows));
      const [registers, tiled, simple] = await runKernels(p, layout, ['registers', 'tiled', undefined]);
      expectClose(`${p.label}: registers`, pickRows(p, registers, rows), expected, TOLERANCE);
      expectClose(`${p.label}: tiled`, pickRows(p, tiled, rows), expected, TOLERANCE);
      expectClose(`${p.label}: token_attention`, pickRows(p, simple, rows), expected, TOLERANCE);
    }
    const { device } = await gpu();
    if (device.features.has('shader-f16')) {
      const p: Problem = { label: 'f16 cross 2x100x77, 2 heads x 40', batch: 2, heads: 2, headDim: 40, queries: 100, keys: 77 };
      const layout = layoutOf(p, 7);
      const rows = allRows(p);
      const expected = Float32Array.from(reference(p, layout, rows));
      const [registers, tiled, simple] = await runKernels(p, layout, ['registers', 'tiled', undefined], 'f16');
      expectClose(`${p.label}: registers`, pickRows(p, registers, rows), expected, F16_TOLERANCE);
      expectClose(`${p.label}: tiled`, pickRows(p, tiled, rows), expected, F16_TOLERANCE);
      expectClose(`${p.label}: token_attention`, pickRows(p, simple, rows), expected, F16_TOLERANCE);
    } else {
      console.log('    this adapter has no shader-f16: the f16 variant is not compared here');
    }
  },
);

attention(
  '4096 tokens (2048 at head dim 160), head dims 40, 64, 80, 160 and 4096 x 77 cross-attention: the three kernels against each other and float64',
  async () => {
    // token_attention recomputes each query's scores per 16 output channels: at head dim 160 and
    // 4096 tokens it alone took a minute here, so that case runs at 2048 tokens (4096 is in the bench).
    const problems: Problem[] = [
      ...[40, 64, 80, 160].map((headDim): Problem => ({
        label: `self ${headDim === 160 ? 2048 : 4096}, 1 head x ${headDim}`,
        batch: 1,
        heads: 1,
        headDim,
        queries: headDim === 160 ? 2048 : 4096,
        keys: null,
      })),
      // SD 1.5's first block: 8 heads of 40 over the 77 text tokens, two images (classifier-free guidance).
      { label: 'cross 2x4096x77, 8 heads x 40', batch: 2, heads: 8, headDim: 40, queries: 4096, keys: 77 },
    ];
    for (const [i, p] of problems.entries()) {
      const layout = layoutOf(p, 1000 + 10 * i);
      const start = performance.now();
      const [registers, tiled, simple] = await runKernels(p, layout, ['registers', 'tiled', undefined]);
      const seconds = (performance.now() - start) / 1000;
      // Queries in every block, the first and the last included, of every image and head.
      const rows = allRows(p).filter(([, , query]) => query % 61 === 0 || query === p.queries - 1);
      const expected = Float32Array.from(reference(p, layout, rows));
      console.log(`    ${p.label}: the three kernels in ${seconds.toFixed(1)} s; against token_attention, all outputs:`);
      expectClose(`${p.label}: registers vs token_attention`, registers, simple, TOLERANCE);
      expectClose(`${p.label}: tiled vs token_attention`, tiled, simple, TOLERANCE);
      expectClose(`${p.label}: registers, ${rows.length} queries`, pickRows(p, registers, rows), expected, TOLERANCE);
      expectClose(`${p.label}: tiled, ${rows.length} queries`, pickRows(p, tiled, rows), expected, TOLERANCE);
      expectClose(`${p.label}: token_attention, ${rows.length} queries`, pickRows(p, simple, rows), expected, TOLERANCE);
    }
  },
);

attention(
  'the register kernel for the software families, the tiled one for GPUs (and where vec4s do not fit), token_attention without a family and for wider heads',
  async () => {
    const g = new Graph('f32');
    const aligned = [tokenColumns(g.input('qkv', [1, 8, 3 * 320]), 0, 320)];
    const offCentre = [tokenColumns(g.input('odd', [1, 8, 3 * 320 + 2]), 2, 320)];
    for (const headDim of [40, 64, 80, 160, 161]) assert.is(attentionShader(undefined, headDim, aligned), 'token_attention');
    for (const kernels of ['registers', 'registers-storage'] as const) {
      assert.is(attentionShader(kernels, 40, aligned), 'token_attention_registers');
      assert.is(attentionShader(kernels, 80, aligned), 'token_attention_registers');
      assert.is(attentionShader(kernels, 84, aligned), 'token_attention_registers_wide');
      assert.is(attentionShader(kernels, 160, aligned), 'token_attention_registers_wide');
      assert.is(attentionShader(kernels, 164, aligned), 'token_attention');
      // vec4 reads need 4-aligned head dims, offsets and strides: the tiled kernel takes the rest.
      assert.is(attentionShader(kernels, 42, aligned), 'token_attention_tiled');
      assert.is(attentionShader(kernels, 40, offCentre), 'token_attention_tiled');
    }
    for (const kernels of ['tiled', 'tiled-wide', 'tiled-wide-subgroups'] as const) {
      assert.is(attentionShader(kernels, 40, aligned), 'token_attention_tiled');
      assert.is(attentionShader(kernels, 80, aligned), 'token_attention_tiled');
      assert.is(attentionShader(kernels, 81, aligned), 'token_attention_tiled_wide');
      assert.is(attentionShader(kernels, 160, aligned), 'token_attention_tiled_wide');
      assert.is(attentionShader(kernels, 161, aligned), 'token_attention');
    }
    const zeros: WeightSource = {
      take: (weightName: string, ...accepted: number[][]) => ({ name: weightName, shape: accepted[0], data: new Float32Array(0) }),
    };
    for (const name of ['sd15', 'sd21']) {
      const config = parseConditionalUNetConfig(JSON.parse(readFileSync(`${SD_CONFIGS}/${name}/unet/config.json`, 'utf8')));
      for (const [kernels, family] of [['tiled', 'token_attention_tiled'], ['registers-storage', 'token_attention_registers']] as const) {
        const graph = buildConditionalUNetGraph(config, zeros, { batch: 2, kernels });
        const nodes = graph.nodes.filter((n) => n.kind === 'token_attention');
        assert.is(nodes.length, 32);
        const counts = new Map<string, number>();
        for (const n of nodes) {
          const key = `${n.shader} (head dim ${n.params.head_dim}, ${n.params.query_length}x${n.params.key_length})`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
          assert.ok(n.shader.startsWith(family), `${name}, ${kernels}: ${key}`);
        }
        console.log(`    ${name}, ${kernels}: ${[...counts].map(([key, count]) => `${count} x ${key}`).join(', ')}`);
      }
    }
  },
);

attention.run();
