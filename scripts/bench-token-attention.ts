// Times the token attention kernels against each other in one process, A/B interleaved: the tiled
// kernel (token_attention_tiled*.wgsl, for GPUs) and the register kernel
// (token_attention_registers*.wgsl, software drivers), on
// random q, k and v read in place from one fused projection, as the conditional UNet's
// self-attention reads them. The default shape is SD 1.5's first block: 2 images (classifier-free
// guidance), 4096 tokens, 8 heads of 40. Prints each round and the median and fastest per kernel.
//   node scripts/node.mjs scripts/bench-token-attention.ts [--tokens 4096] [--heads 8] [--head-dim 40]
//     [--batch 2] [--keys N (cross-attention over N keys)] [--rounds 5] [--precision f32|f16]
//   deno run -A scripts/bench-token-attention.ts [the same flags]
import { parseArgs } from 'node:util';
import { requestGpu } from '../src/gpu/device.ts';
import { CompiledGraph } from '../src/graph/executor.ts';
import { Graph } from '../src/graph/graph.ts';
import type { ConvKernels } from '../src/ops/conv2d.ts';
import { tokenAttentionCore, tokenColumns } from '../src/ops/token_attention.ts';

const { values } = parseArgs({
  args: (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2),
  options: {
    tokens: { type: 'string', default: '4096' },
    keys: { type: 'string' },
    heads: { type: 'string', default: '8' },
    'head-dim': { type: 'string', default: '40' },
    batch: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    precision: { type: 'string', default: 'f32' },
  },
});
const count = (name: string, text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: --${name} takes a positive integer, got ${text}`);
    process.exit(2);
  }
  return n;
};
const tokens = count('tokens', values.tokens);
const keys = values.keys === undefined ? null : count('keys', values.keys);
const heads = count('heads', values.heads);
const headDim = count('head-dim', values['head-dim']);
const batch = count('batch', values.batch);
const rounds = count('rounds', values.rounds);
if (values.precision !== 'f32' && values.precision !== 'f16') {
  console.error(`error: --precision takes f32 or f16, got ${values.precision}`);
  process.exit(2);
}
// The attention core's activations: f16-packed changes only weights, which this has none of.
const precision: 'f32' | 'f16' = values.precision;
const width = heads * headDim;

const gpu = await requestGpu();
if (precision === 'f16' && !gpu.device.features.has('shader-f16')) {
  console.error(`error: ${gpu.adapterName} has no shader-f16`);
  process.exit(2);
}

/** One graph per kernel family: the attention core alone over inputs filled once. */
async function compile(kernels: ConvKernels) {
  const g = new Graph(precision);
  let node;
  const inputs: { name: string; length: number }[] = [];
  if (keys === null) {
    const qkv = g.input('qkv', [batch, tokens, 3 * width], precision);
    inputs.push({ name: 'qkv', length: batch * tokens * 3 * width });
    node = tokenAttentionCore(
      g,
      'attention',
      tokenColumns(qkv, 0, width),
      tokenColumns(qkv, width, width),
      tokenColumns(qkv, 2 * width, width),
      {
        heads,
        kernels,
      },
    );
  } else {
    const q = g.input('q', [batch, tokens, width], precision);
    const kv = g.input('kv', [batch, keys, 2 * width], precision);
    inputs.push({ name: 'q', length: batch * tokens * width }, { name: 'kv', length: batch * keys * 2 * width });
    node = tokenAttentionCore(g, 'attention', tokenColumns(q), tokenColumns(kv, 0, width), tokenColumns(kv, width, width), {
      heads,
      kernels,
    });
  }
  g.markOutput(node);
  const compiled = await CompiledGraph.compile(gpu, g, { label: `bench-${kernels}` });
  // Random inputs: an f32 graph takes them as written; an f16 graph's inputs stay as the GPU left them (timing only).
  if (precision === 'f32') {
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 5;
    for (const { name, length } of inputs) compiled.write(name, new Float32Array(length).map(random));
  }
  const shader = g.nodes.find((n) => n.kind === 'token_attention')!.shader;
  return { kernels, shader, compiled };
}

const candidates = [await compile('tiled'), await compile('registers')];
const shape = `${batch} x ${tokens} tokens${keys === null ? '' : ` x ${keys} keys`}, ${heads} heads x ${headDim}, ${precision}`;
console.log(`adapter: ${gpu.adapterName}; ${shape}; ${rounds} rounds, A/B interleaved after one warm-up run each`);
for (const c of candidates) await c.compiled.run();
const times = new Map<string, number[]>(candidates.map((c) => [c.shader, []]));
for (let round = 0; round < rounds; round++) {
  // Alternate which goes first, so neither always follows the other.
  const order = round % 2 === 0 ? candidates : [...candidates].reverse();
  const line: string[] = [];
  for (const c of order) {
    const start = performance.now();
    await c.compiled.run();
    const ms = performance.now() - start;
    times.get(c.shader)!.push(ms);
    line.push(`${c.shader} ${ms.toFixed(0)} ms`);
  }
  console.log(`round ${round + 1}: ${line.join(', ')}`);
}
const pairs = tokens * (keys ?? tokens) * batch * heads;
for (const [shader, ms] of times) {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const gflops = (pairs * 4 * headDim) / (median / 1000) / 1e9;
  console.log(
    `${shader}: median ${median.toFixed(0)} ms, fastest ${sorted[0].toFixed(0)} ms (${gflops.toFixed(1)} GFLOP/s of 4 d flops per score)`,
  );
}
for (const c of candidates) c.compiled.destroy();
