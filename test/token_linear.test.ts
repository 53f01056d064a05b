// The register-blocked token kernels (token_linear.wgsl, token_geglu.wgsl) against float64, at
// every precision: rows and outputs that leave partial blocks (4 rows x 8 outputs per invocation,
// 4 x 4 for GEGLU, 32 rows per workgroup), in_features a multiple of 4 (vec4 reads) and not (one value at a time),
// each activation, with and without bias and residual, the lanes across row blocks and (few rows)
// across output blocks. Every case prints its measured error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Graph, Tensor } from '../src/graph/graph.ts';
import type { Precision } from '../src/gpu/shader_source.ts';
import { devicePrecision } from '../src/models/compile.ts';
import { float16ToFloat32, float32ToFloat16 } from '../src/io/half.ts';
import { tokenGeglu } from '../src/ops/token_geglu.ts';
import { type TokenActivation, tokenBlocks, tokenLinear } from '../src/ops/token_linear.ts';
import type { WeightArray } from '../src/ops/weights.ts';
import { expectClose } from './util/compare.ts';
import { mulberry32 } from './util/random.ts';
import { erf, gpu, runGraph } from './util/shared_gpu.ts';

// f32 sums of tens of terms against float64: ~1e-7 relative is typical. At f16 the output is
// rounded to f16 (2^-11 relative at worst) after an f32 computation.
const TOLERANCE: Record<Precision, number> = { 'f32': 2e-6, 'f16-packed': 2e-6, 'f16': 1e-3 };

function filled(n: number, seed: number, scale = 1): Float32Array {
  const uniform = mulberry32(seed);
  return new Float32Array(n).map(() => (uniform() - 0.5) * scale);
}

const half = (values: Float32Array) => values.map((v) => float16ToFloat32(float32ToFloat16(v)));

/** The values a graph of `precision` computes with: large weights f16 unless f32, everything else f16 only at f16. */
function asStored(precision: Precision, values: Float32Array, largeWeight: boolean): Float32Array {
  return precision === 'f16' || (precision === 'f16-packed' && largeWeight) ? half(values) : values;
}

function activate(x: number, activation: TokenActivation): number {
  if (activation === 'quick_gelu') return x / (1 + Math.exp(-1.702 * x));
  if (activation === 'gelu') return gelu(x);
  return x;
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** x [rows, in] W^T + b in float64. */
function linear64(x: Float32Array, rows: number, w: Float32Array, b: Float32Array | null, outF: number): Float64Array {
  const inF = x.length / rows;
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i] * w[o * inF + i];
      out[r * outF + o] = acc;
    }
  }
  return out;
}

/** A graph run once at `precision` (the inputs and output converted on the way). */
function runAt(
  precision: Precision,
  inputs: Record<string, { shape: number[]; data: Float32Array }>,
  build: (g: Graph, t: Record<string, Tensor>) => Tensor,
): Promise<Float32Array> {
  return runGraph(inputs, build, { precision, label: 'token-linear-test' });
}

/** The precisions this device runs: f16 where it has shader-f16 (else f16 would run as f16-packed, tested anyway). */
async function precisions(): Promise<Precision[]> {
  const device = await gpu();
  return devicePrecision(device, 'f16') === 'f16' ? ['f32', 'f16', 'f16-packed'] : ['f32', 'f16-packed'];
}

const test = suite('token linear kernels');

test('the lanes take row blocks, or output blocks where that leaves fewer idle', () => {
  assert.is(tokenBlocks(128, 320, 8).params.lanes, 0);
  assert.equal(tokenBlocks(128, 320, 8).dispatch.invocations, [32, 40]);
  assert.is(tokenBlocks(154, 2560, 8).params.lanes, 0);
  assert.is(tokenBlocks(8, 1280, 8).params.lanes, 1);
  assert.equal(tokenBlocks(8, 1280, 4).dispatch.invocations, [320, 2]);
  assert.is(tokenBlocks(6, 75, 8).params.lanes, 1);
  assert.is(tokenBlocks(1, 1, 8).params.lanes, 0);
});

/** [label, batch, tokens, in, out]: rows = batch * tokens. */
const LINEAR_SHAPES: [string, number, number, number, number][] = [
  ['vec4 reads, partial row and output blocks', 3, 13, 36, 21],
  ['one value at a time (in 37)', 3, 5, 37, 21],
  ['more than one workgroup of rows, whole blocks', 2, 40, 24, 16],
  ['one row, one output, in 3', 1, 1, 3, 1],
  ['few rows: the lanes take output blocks', 2, 3, 36, 75],
];

const LINEAR_EPILOGUES: [TokenActivation, boolean, boolean][] = [
  ['none', true, false],
  ['quick_gelu', true, true],
  ['gelu', false, true],
  ['gelu', true, false],
  ['none', false, false],
];

test('token_linear: partial blocks, vec4 and scalar reads, every activation, bias and residual, against float64', async () => {
  for (const precision of await precisions()) {
    for (const [label, batch, tokens, inF, outF] of LINEAR_SHAPES) {
      const rows = batch * tokens;
      const x = filled(rows * inF, 1, 4);
      const residual = filled(rows * outF, 2);
      const w: WeightArray = { name: 'w', shape: [outF, inF], data: filled(outF * inF, 3) };
      const b: WeightArray = { name: 'b', shape: [outF], data: filled(outF, 4) };
      for (const [activation, withBias, withResidual] of LINEAR_EPILOGUES) {
        const actual = await runAt(
          precision,
          {
            x: { shape: [batch, tokens, inF], data: x },
            residual: { shape: [batch, tokens, outF], data: residual },
          },
          (g, t) => tokenLinear(g, 'linear', t.x, w, withBias ? b : null, { activation, residual: withResidual ? t.residual : undefined }),
        );
        const projected = linear64(
          asStored(precision, x, false),
          rows,
          asStored(precision, w.data, true),
          withBias ? asStored(precision, b.data, false) : null,
          outF,
        );
        const storedResidual = asStored(precision, residual, false);
        const reference = Float32Array.from(projected, (v, i) => activate(v, activation) + (withResidual ? storedResidual[i] : 0));
        const epilogue = `${activation}${withBias ? ' + bias' : ''}${withResidual ? ' + residual' : ''}`;
        expectClose(`${precision} [${rows}, ${inF}] -> ${outF}, ${epilogue} (${label})`, actual, reference, TOLERANCE[precision]);
      }
    }
  }
});

/** [label, batch, tokens, in, out (of each half)]. */
const GEGLU_SHAPES: [string, number, number, number, number][] = [
  ['vec4 reads, partial row and output blocks', 2, 7, 20, 13],
  ['one value at a time (in 19)', 2, 7, 19, 13],
  ['more than one workgroup of rows, whole blocks', 1, 72, 16, 8],
  ['few rows: the lanes take output blocks', 2, 1, 20, 37],
];

test('token_geglu: partial blocks, vec4 and scalar reads, against float64', async () => {
  for (const precision of await precisions()) {
    for (const [label, batch, tokens, inF, outF] of GEGLU_SHAPES) {
      const rows = batch * tokens;
      const x = filled(rows * inF, 5, 4);
      const weight: WeightArray = { name: 'w', shape: [2 * outF, inF], data: filled(2 * outF * inF, 6) };
      const bias: WeightArray = { name: 'b', shape: [2 * outF], data: filled(2 * outF, 7) };
      const actual = await runAt(
        precision,
        { x: { shape: [batch, tokens, inF], data: x } },
        (g, t) => tokenGeglu(g, 'geglu', t.x, weight, bias),
      );
      const projected = linear64(
        asStored(precision, x, false),
        rows,
        asStored(precision, weight.data, true),
        asStored(precision, bias.data, false),
        2 * outF,
      );
      const reference = new Float32Array(rows * outF);
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outF; o++) reference[r * outF + o] = projected[r * 2 * outF + o] * gelu(projected[r * 2 * outF + outF + o]);
      }
      expectClose(`${precision} [${rows}, ${inF}] -> ${outF} (${label})`, actual, reference, TOLERANCE[precision]);
    }
  }
});

test.run();
