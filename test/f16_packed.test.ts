/**
 * precision 'f16-packed' (issue 23): the large weights stored as f16 pairs in u32 words and read
 * with core WGSL's unpack2x16float, activations and arithmetic f32, on any adapter; and 'f16' on an
 * adapter without shader-f16 falling back to it. Every packed shader variant compiles; a conv of
 * each kernel family reads its packed weights exactly as f32 reads the same values; the goldens
 * (emoji32's UNet, the tiny SD UNet, text encoder, VAE decode and text-to-image) hold within 2e-3;
 * the weights take half the bytes of f32's.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { Gpu } from '../src/gpu/device.ts';
import { Kernel, missingFeatures } from '../src/gpu/kernel.ts';
import { shaderFor } from '../src/gpu/shader_source.ts';
import { CompiledGraph } from '../src/graph/executor.ts';
import { byteSize, Graph, type Tensor } from '../src/graph/graph.ts';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../src/io/half.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { Autoencoder, readAutoencoder } from '../src/models/autoencoder_model.ts';
import { ClipTextEncoder, readClipTextModel } from '../src/models/clip_text_encoder.ts';
import { devicePrecision } from '../src/models/compile.ts';
import { buildConditionalUNetGraph } from '../src/models/unet_2d_condition.ts';
import { parseConditionalUNetConfig } from '../src/models/unet_2d_condition_config.ts';
import { ConditionalUNet, readConditionalUNet } from '../src/models/unet_2d_condition_model.ts';
import type { WeightSource } from '../src/models/weights.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { conv2d, type ConvKernels, KERNEL_FAMILIES, kernelsRunOn } from '../src/ops/conv2d.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { SHADERS } from '../src/shaders.gen.ts';
import { StableDiffusionPipeline } from '../src/text_to_image_pipeline.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { mulberry32 } from './util/random.ts';
import { gpu } from './util/shared_gpu.ts';

/** Issue 23's bound for the packed goldens: the weights rounded to 11 bits, everything else f32. */
const PACKED_TOLERANCE = 2e-3;
/** A packed conv against f32 on the same (f16-rounded) weights: the same products, summed alike. */
const SAME_WEIGHTS_TOLERANCE = 1e-6;
/** emoji32 through the uniform windows: f16 windows hold twice the channels (f16's 233 less its two casts). */
const EMOJI32_WINDOWED_DISPATCHES_PACKED = 231;
const SD = '../shared/golden/sd';

/** `real` as an adapter without shader-f16 would give it: the same device, its features hidden. */
function withoutShaderF16(real: Gpu): Gpu {
  const features = new Set([...real.device.features].filter((f) => f !== 'shader-f16'));
  const device = new Proxy(real.device, {
    get(target, key) {
      if (key === 'features') return features;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...real, adapterName: `${real.adapterName} without shader-f16`, device };
}

function emoji32() {
  return readUNet({
    config: JSON.parse(readFileSync('weights/emoji32/config.json', 'utf8')),
    weights: new Uint8Array(readFileSync('weights/emoji32/diffusion_pytorch_model.safetensors')),
  });
}

const test = suite('f16-packed');

test('every shader that reads large weights has one f16-packed variant, and it compiles; the rest run as at f32', async () => {
  const device = (await gpu()).device;
  const shaders = Object.values(SHADERS).filter((s) => s.activations);
  const packed = shaders.map((s) => shaderFor(s, 'f16-packed')).filter((v, i) => v !== shaders[i]);
  const names = packed.map((v) => v.name).sort();
  console.log(`    ${packed.length} of ${shaders.length} shaders read packed weights: ${names.join(', ')}`);
  for (
    const reader of [
      'conv2d',
      'conv2d_wide',
      'conv2d_wide_uniform_weights',
      'conv2d_tiled',
      'linear',
      'token_linear',
      'token_geglu',
      'token_embedding',
    ]
  ) {
    assert.ok(names.includes(`${reader}_f16_packed`), `${reader} reads packed weights`);
  }
  for (const variant of packed) {
    assert.not.ok(/array<(vec4<)?weight_t>/.test(variant.code.replace(/\/\/.*$/gm, '')), `${variant.name}: no weight_t array left`);
    assert.not.ok(variant.code.includes('enable f16'), `${variant.name} needs no shader-f16`);
    assert.is(shaderFor(SHADERS[variant.name.replace(/_f16_packed$/, '') as keyof typeof SHADERS], 'f16-packed'), variant, 'made once');
  }
  // Those needing a feature this device lacks (subgroups on Deno's wgpu) are refused by name (ops.test.ts).
  const runnable = packed.filter((shader) => missingFeatures(shader, device).length === 0);
  await Promise.all(runnable.map((shader) => Kernel.load(device, shader)));
  console.log(`    ${runnable.length} packed variants compiled`);
});

test("'f16' without shader-f16 runs as 'f16-packed'; 'f16' with it, and 'f32', as asked", async () => {
  const real = await gpu();
  const bare = withoutShaderF16(real);
  assert.is(devicePrecision(bare, 'f16'), 'f16-packed');
  assert.is(devicePrecision(bare, 'f16-packed'), 'f16-packed');
  assert.is(devicePrecision(bare, 'f32'), 'f32');
  assert.is(devicePrecision(real, 'f16'), real.device.features.has('shader-f16') ? 'f16' : 'f16-packed');
  assert.is(devicePrecision(real, 'f16-packed'), 'f16-packed');
});

/** A conv case: [label, batch, cin, cout, height, width, kernel, padding, stride]. */
const CONV_CASES: [string, number, number, number, number, number, number, number, number][] = [
  ['3x3 pad 1, 16x16, 40 -> 24 (uniform windows on registers)', 1, 40, 24, 16, 16, 3, 1, 1],
  ['3x3 pad 1, 4x4, 20 -> 12, batch 2 (whole images per invocation)', 2, 20, 12, 4, 4, 3, 1, 1],
  ['3x3 stride 2, 9x7, 5 -> 13 (the general path)', 1, 5, 13, 9, 7, 3, 1, 2],
  ['1x1, 8x8, 12 -> 9, batch 3', 3, 12, 9, 8, 8, 1, 0, 1],
];

/** The families this device runs (not the subgroup one on Deno's wgpu: its refusal is in ops.test.ts). */
const testDevice = (await gpu()).device;
const families = KERNEL_FAMILIES.filter((k) => kernelsRunOn(k, testDevice));

/** Runs one conv at `precision` on `x` with weights `w`, bias `b`; returns its output. */
async function runConv(
  precision: 'f32' | 'f16-packed',
  kernels: ConvKernels,
  shape: { batch: number; cin: number; height: number; width: number; kernel: number; padding: number; stride: number },
  x: Float32Array,
  w: { shape: number[]; data: Float32Array },
  b: Float32Array,
): Promise<{ out: Float32Array; weights: Tensor[] }> {
  const g = new Graph(precision);
  const input = g.input('x', [shape.batch, shape.cin, shape.height, shape.width]);
  const p = shape.padding;
  const out = g.markOutput(conv2d(g, 'conv', input, { name: 'w', ...w }, { name: 'b', shape: [b.length], data: b }, {
    kernels,
    padding: [p, p, p, p],
    stride: shape.stride,
  }));
  const compiled = await CompiledGraph.compile(await gpu(), g, { label: 'f16-packed-test' });
  try {
    compiled.write('x', x);
    await compiled.run();
    return { out: await compiled.read(out.name), weights: g.tensors.filter((t) => t.role === 'weight' && t.name.startsWith('w:')) };
  } finally {
    compiled.destroy();
  }
}

for (const kernels of families) {
  for (const [label, batch, cin, cout, height, width, kernel, padding, stride] of CONV_CASES) {
    test(`conv2d [${kernels}] at f16-packed: ${label}, as f32 on the same f16 weights`, async () => {
      const uniform = mulberry32(cin * 1000 + cout);
      const values = (n: number, scale = 1) => new Float32Array(n).map(() => (uniform() - 0.5) * scale);
      const x = values(batch * cin * height * width);
      // Rounded to f16 here, so that f32 computes on the values the packed weights hold.
      const wShape = [cout, cin, kernel, kernel];
      const w = float16ArrayToFloat32(float32ArrayToFloat16(values(cout * cin * kernel * kernel, 1 / Math.sqrt(cin * kernel * kernel))));
      const b = values(cout);
      const shape = { batch, cin, height, width, kernel, padding, stride };
      const f32 = await runConv('f32', kernels, shape, x, { shape: wShape, data: w }, b);
      const packed = await runConv('f16-packed', kernels, shape, x, { shape: wShape, data: w }, b);
      assert.ok(packed.weights.every((t) => t.dtype === 'f16'));
      const bytes = (weights: Tensor[]) => weights.reduce((sum, t) => sum + byteSize(t), 0);
      // A uniform window is 64 KiB whatever it holds: f16 halves the windows a conv needs, not a window's size.
      const windowed = packed.weights.some((t) => t.name.includes(':window'));
      if (windowed) assert.ok(bytes(packed.weights) <= bytes(f32.weights), 'no more windows than f32');
      else assert.is(bytes(packed.weights) * 2, bytes(f32.weights), 'the weights in half the bytes');
      expectClose(`conv [${kernels}] f16-packed ${label}`, packed.out, f32.out, SAME_WEIGHTS_TOLERANCE);
    });
  }
}

for (const kernels of ['registers', 'tiled'] as const) {
  test(`emoji32 [${kernels}]: 'f16' without shader-f16 runs f16-packed, eps within ${PACKED_TOLERANCE} of diffusers`, async () => {
    const golden = readGolden('emoji32_unet.safetensors');
    const x = goldenF32(golden, 'input.x');
    const t = goldenI32(golden, 'input.t');
    const unet = await UNet.compile(withoutShaderF16(await gpu()), emoji32(), { batch: t.length, kernels, precision: 'f16' });
    try {
      assert.is(unet.precision, 'f16-packed');
      const f32Nodes = (await UNet.compile(await gpu(), emoji32(), { batch: t.length, kernels })).compiled;
      const dispatches = unet.compiled.nodeList.length;
      console.log(`    dispatches per forward [${kernels}]: ${dispatches} (f32: ${f32Nodes.nodeList.length})`);
      assert.is(dispatches, kernels === 'registers' ? EMOJI32_WINDOWED_DISPATCHES_PACKED : f32Nodes.nodeList.length);
      f32Nodes.destroy();
      expectClose(
        `emoji32 output.eps [${kernels}, f16-packed]`,
        await unet.forward(x, t),
        goldenF32(golden, 'output.eps'),
        PACKED_TOLERANCE,
      );
    } finally {
      unet.destroy();
    }
  });
}

/** The bytes of a graph's large weights (those its shaders bind as `weight_t`, or as uniform windows), each counted once. */
function largeWeightBytes(graph: Graph): number {
  const large = new Set<Tensor>();
  for (const node of graph.nodes) {
    node.inputs.forEach((t, i) => {
      const binding = node.source.bindings[i];
      if (t?.role === 'weight' && (binding.element === 'weight' || binding.kind === 'read_uniform')) large.add(t);
    });
  }
  return [...large].reduce((sum, t) => sum + byteSize(t), 0);
}

test('the weights take half the bytes of f32: emoji32 UNet and the tiny SD components, by memory()', async () => {
  const g = await gpu();
  const rows: string[] = [];
  const check = (what: string, f32: { compiled: CompiledGraph }, packed: { compiled: CompiledGraph }) => {
    const [total32, total16] = [f32.compiled.memory.weightBytes, packed.compiled.memory.weightBytes];
    const [large32, large16] = [largeWeightBytes(f32.compiled.graph), largeWeightBytes(packed.compiled.graph)];
    rows.push(
      `${what}: weights f32 ${total32} B, f16-packed ${total16} B (x${
        (total16 / total32).toFixed(3)
      }); large ones ${large32} -> ${large16} B`,
    );
    assert.is(large16 * 2, large32, `${what}: the large weights in exactly half the bytes`);
    // Biases and norms stay f32: a few percent of a small model, far less of a large one.
    assert.ok(total16 < 0.53 * total32, `${what}: ${total16} B packed against ${total32} B f32`);
  };
  const model = emoji32();
  for (const kernels of ['registers-storage', 'tiled'] as const) {
    const [a, b] = [
      await UNet.compile(g, model, { batch: 1, kernels }),
      await UNet.compile(g, model, { batch: 1, kernels, precision: 'f16-packed' }),
    ];
    check(`emoji32 UNet [${kernels}]`, a, b);
    a.destroy();
    b.destroy();
  }
  // The uniform windows are 64 KiB each, the last one of a conv partly empty: f16 halves their count, not quite their bytes.
  const [a, b] = [
    await UNet.compile(g, model, { batch: 1, kernels: 'registers' }),
    await UNet.compile(g, model, { batch: 1, kernels: 'registers', precision: 'f16-packed' }),
  ];
  const [windows32, windows16] = [a.compiled.memory.weightBytes, b.compiled.memory.weightBytes];
  rows.push(
    `emoji32 UNet [registers, uniform windows]: weights f32 ${windows32} B, f16-packed ${windows16} B (x${
      (windows16 / windows32).toFixed(3)
    })`,
  );
  assert.ok(windows16 < 0.6 * windows32, `windowed: ${windows16} B packed against ${windows32} B f32`);
  a.destroy();
  b.destroy();
  const sdUNet = readConditionalUNet(sdFiles('unet', 'diffusion_pytorch_model.safetensors'));
  const [c, d] = [
    await ConditionalUNet.compile(g, sdUNet, { batch: 1 }),
    await ConditionalUNet.compile(g, sdUNet, { batch: 1, precision: 'f16-packed' }),
  ];
  check('tiny SD UNet', c, d);
  c.destroy();
  d.destroy();
  const text = readClipTextModel(sdFiles('text_encoder', 'model.safetensors'));
  const [e, f] = [
    await ClipTextEncoder.compile(g, text, { batch: 1 }),
    await ClipTextEncoder.compile(g, text, { batch: 1, precision: 'f16-packed' }),
  ];
  check('tiny SD text encoder', e, f);
  e.destroy();
  f.destroy();
  for (const row of rows) console.log(`    ${row}`);
});

test("SD 1.5's UNet from its published config (no weights, no GPU): the weights each kernel family uploads, f32 and f16-packed", () => {
  const config = parseConditionalUNetConfig(JSON.parse(readFileSync(`${SD}/configs/sd15/unet/config.json`, 'utf8')));
  // Shapes only: a weight's values are made when it is uploaded, which this never does.
  const shapes: WeightSource = {
    take: (name: string, ...accepted: number[][]) => ({ name, shape: accepted[0], data: new Float32Array(0) }),
  };
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  for (const kernels of ['tiled', 'registers'] as const) {
    const [f32, packed] = (['f32', 'f16-packed'] as const).map((precision) =>
      buildConditionalUNetGraph(config, shapes, { batch: 2, kernels, precision })
    );
    // What DeviceWeights uploads: one buffer per weight, each rounded up to 4 bytes.
    const uploaded = (graph: Graph) =>
      graph.tensors.filter((t) => t.role === 'weight').reduce((sum, t) => sum + Math.ceil(byteSize(t) / 4) * 4, 0);
    const [total32, total16] = [uploaded(f32), uploaded(packed)];
    const [large32, large16] = [largeWeightBytes(f32), largeWeightBytes(packed)];
    console.log(
      `    SD 1.5 UNet [${kernels}]: weights f32 ${mib(total32)}, f16-packed ${mib(total16)} (x${
        (total16 / total32).toFixed(3)
      }); large ones ${mib(large32)} -> ${mib(large16)}`,
    );
    if (kernels !== 'registers') assert.is(large16 * 2, large32, 'the large weights in exactly half the bytes');
    // The uniform windows are 64 KiB each, the last of a conv partly empty.
    assert.ok(total16 < (kernels === 'registers' ? 0.52 : 0.501) * total32, `${total16} B packed against ${total32} B f32`);
  }
});

function sdFiles(component: string, weights: string) {
  return {
    config: JSON.parse(readFileSync(`${SD}/tiny-sd/${component}/config.json`, 'utf8')) as Record<string, unknown>,
    weights: new Uint8Array(readFileSync(`${SD}/tiny-sd/${component}/${weights}`)),
  };
}

test(`tiny SD at f16-packed: UNet eps, text encoder, VAE decode within ${PACKED_TOLERANCE} of the float64 references`, async () => {
  const g = await gpu();
  const sd = readGolden('sd/sd.safetensors');
  const unet = await ConditionalUNet.compile(g, readConditionalUNet(sdFiles('unet', 'diffusion_pytorch_model.safetensors')), {
    batch: 2,
    precision: 'f16-packed',
  });
  try {
    const eps = await unet.forward(goldenF32(sd, 'unet.x'), goldenI32(sd, 'unet.t'), goldenF32(sd, 'unet.encoder_hidden_states'));
    expectClose('unet.eps at f16-packed', eps, goldenF32(sd, 'unet.eps'), PACKED_TOLERANCE);
  } finally {
    unet.destroy();
  }
  const ids = goldenI32(sd, 'text.input_ids');
  const encoder = await ClipTextEncoder.compile(g, readClipTextModel(sdFiles('text_encoder', 'model.safetensors')), {
    batch: ids.length / 77,
    precision: 'f16-packed',
  });
  try {
    expectClose('text.prompt_embeds at f16-packed', await encoder.encode(ids), goldenF32(sd, 'text.prompt_embeds'), PACKED_TOLERANCE);
  } finally {
    encoder.destroy();
  }
  const vae = Autoencoder.load(g, readAutoencoder(sdFiles('vae', 'diffusion_pytorch_model.safetensors')), { precision: 'f16-packed' });
  try {
    const decoded = await vae.decode(goldenF32(sd, 'vae.z'), [1, 4, 8, 8]);
    expectClose('vae.decoded at f16-packed', decoded.image, goldenF32(sd, 'vae.decoded'), PACKED_TOLERANCE);
  } finally {
    vae.destroy();
  }
});

test(`tiny SD text-to-image at 'f16' without shader-f16 (f16-packed, its VAE too): t2i.image within ${PACKED_TOLERANCE}`, async () => {
  const golden = readGolden('sd/sd.safetensors');
  const meta = JSON.parse(golden.metadata!.t2i);
  const pipeline = await StableDiffusionPipeline.load(withoutShaderF16(await gpu()), await loadModelDir(`${SD}/tiny-sd`), {
    precision: 'f16',
  });
  try {
    assert.is(pipeline.precision, 'f16-packed');
    assert.is(pipeline.autoencoder.precision, 'f16-packed', 'force_upcast asks for f32 activations, which f16-packed has');
    const result = await pipeline.sample({
      prompt: meta.prompt,
      negativePrompt: meta.negative,
      guidance: meta.guidance,
      steps: meta.steps,
      xT: goldenF32(golden, 't2i.xT'),
    });
    expectClose('t2i.latent at f16-packed', result.x0, goldenF32(golden, 't2i.latent'), PACKED_TOLERANCE);
    expectClose('t2i.image at f16-packed', result.images, goldenF32(golden, 't2i.image'), PACKED_TOLERANCE);
  } finally {
    pipeline.destroy();
  }
});

test("DdimPipeline at 'f16' without shader-f16 says f16-packed, and withBatch keeps it", async () => {
  const pipeline = await DdimPipeline.load(withoutShaderF16(await gpu()), await loadModelDir('weights/emoji32'), { precision: 'f16' });
  try {
    assert.is(pipeline.precision, 'f16-packed');
    const other = await pipeline.withBatch(2);
    assert.is(other.precision, 'f16-packed');
    other.destroy();
  } finally {
    pipeline.destroy();
  }
});

test.run();
