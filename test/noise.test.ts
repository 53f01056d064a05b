import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { requestGpu } from '../src/gpu/device.ts';
import { SHADERS } from '../src/shaders.gen.ts';
import { philox4x32_10, philoxNormals, seedWords, wordToUniform } from '../src/sampler/noise.ts';

const noise = suite('noise');

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, '0')).join(' ');

noise("Philox4x32-10 gives Random123's known answers", () => {
  // kat_vectors: "philox4x32 10 <counter ×4> <key ×2> <output ×4>"
  const out = new Uint32Array(4);
  assert.is(hex(philox4x32_10(0, 0, 0, 0, 0, 0, out)), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const ones = 0xffffffff;
  assert.is(hex(philox4x32_10(ones, ones, ones, ones, ones, ones, out)), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.is(
    hex(philox4x32_10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out)),
    'd16cfe09 94fdcceb 5001e420 24126ea1',
  );
});

noise('uniforms are exact in float32 and never 0 or 1', () => {
  for (const word of [0, 1, 511, 512, 0x7fffffff, 0xfffffe00, 0xffffffff]) {
    const u = wordToUniform(word);
    assert.is(Math.fround(u), u, `uniform of ${word} must be a float32`);
    assert.ok(u > 0 && u < 1);
  }
  assert.is(wordToUniform(0), 2 ** -24);
  assert.is(wordToUniform(0xffffffff), 1 - 2 ** -24);
});

noise("1e5 normals have mean 0, variance 1, and no tail beyond the uniform's limit", () => {
  const n = 100_000;
  const z = philoxNormals(1234, 0, n);
  let sum = 0;
  let sumSq = 0;
  let sum4 = 0;
  let within1 = 0;
  let maxAbs = 0;
  for (const v of z) {
    sum += v;
    sumSq += v * v;
    sum4 += v ** 4;
    if (Math.abs(v) < 1) within1++;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = sum / n;
  const variance = sumSq / n - mean * mean;
  const kurtosis = sum4 / n / (variance * variance);
  console.log(
    `    mean ${mean.toFixed(5)}, variance ${variance.toFixed(5)}, kurtosis ${kurtosis.toFixed(3)}, P(|z| < 1) ${
      (within1 / n).toFixed(4)
    }, max |z| ${maxAbs.toFixed(3)}`,
  );
  // Standard errors at n = 1e5: mean 0.0032, variance 0.0045, kurtosis ~0.015, P(|z|<1) 0.0015.
  assert.ok(Math.abs(mean) < 0.015);
  assert.ok(Math.abs(variance - 1) < 0.02);
  assert.ok(Math.abs(kurtosis - 3) < 0.1);
  assert.ok(Math.abs(within1 / n - 0.6827) < 0.007);
  assert.ok(maxAbs <= Math.sqrt(2 * 24 * Math.LN2));
  // Neighbouring elements come from one Box–Muller pair or one Philox block: they must not correlate.
  let lag1 = 0;
  for (let i = 0; i + 1 < n; i++) lag1 += z[i] * z[i + 1];
  assert.ok(Math.abs(lag1 / n) < 0.015, `lag-1 correlation ${lag1 / n}`);
});

noise('streams and seeds differ; an element does not depend on the count', () => {
  const a = philoxNormals(7, 0, 1000);
  const b = philoxNormals(7, 1, 1000);
  const c = philoxNormals(8, 0, 1000);
  const high = philoxNormals(7 + 2 ** 32, 0, 1000);
  for (const other of [b, c, high]) {
    let same = 0;
    for (let i = 0; i < 1000; i++) if (a[i] === other[i]) same++;
    assert.is(same, 0);
  }
  assert.equal(Array.from(philoxNormals(7, 0, 13)), Array.from(a.subarray(0, 13)));
  assert.equal(Array.from(philoxNormals(7, 0, 1000)), Array.from(a));
  assert.equal(seedWords(2 ** 53 - 1), { seedLo: 0xffffffff, seedHi: 0x1fffff });
  assert.throws(() => philoxNormals(-1, 0, 4), /seed/);
  assert.throws(() => philoxNormals(2 ** 53, 0, 4), /seed/);
  assert.throws(() => philoxNormals(1, 2 ** 32, 4), /stream/);
});

/** Runs the noise shader (shaders/sampler/noise.wgsl) over `count` elements on a grid of workgroups (x, y). */
async function gpuNormals(
  device: GPUDevice,
  seed: number,
  stream: number,
  count: number,
  grid: [number, number],
  perImage = count,
  firstImage = 0,
): Promise<Float32Array> {
  const module = device.createShaderModule({ code: SHADERS.noise.code, label: 'noise' });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bytes = count * 4;
  const output = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const { seedLo, seedHi } = seedWords(seed);
  const params = device.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([count, seedLo, seedHi, stream, perImage, firstImage, 0, 0]));
  const readback = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: output } }, { binding: 1, resource: { buffer: params } }],
    }),
  );
  pass.dispatchWorkgroups(grid[0], grid[1]);
  pass.end();
  encoder.copyBufferToBuffer(output, 0, readback, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(readback.getMappedRange().slice(0));
  readback.unmap();
  for (const b of [output, params, readback]) b.destroy();
  return out;
}

noise('the WGSL shader makes the same normals as the CPU', async () => {
  const { device, adapterName, uncapturedErrors } = await requestGpu();
  try {
    const cases: { seed: number; stream: number; count: number; grid: [number, number]; perImage?: number; firstImage?: number }[] = [
      // An odd count that ends inside a Philox block and inside a workgroup.
      { seed: 2 ** 40 + 12345, stream: 7, count: 100_003, grid: [Math.ceil(100_003 / 64), 1] },
      // A two-row grid: row y continues the element index after row y − 1.
      { seed: 99, stream: 0xffffffff, count: 1000, grid: [8, 2] },
      // Several images in one buffer: image j's values are those of counter word image = 5 + j.
      { seed: 3, stream: 11, count: 2 * 3070 + 5, grid: [Math.ceil((2 * 3070 + 5) / 64), 1], perImage: 3070, firstImage: 5 },
    ];
    for (const { seed, stream, count, grid, perImage = count, firstImage = 0 } of cases) {
      const gpu = await gpuNormals(device, seed, stream, count, grid, perImage, firstImage);
      const cpu = new Float32Array(count);
      for (let start = 0, image = firstImage; start < count; start += perImage, image++) {
        cpu.set(philoxNormals(seed, stream, Math.min(perImage, count - start), image), start);
      }
      let worst = 0;
      let worstIndex = 0;
      for (let i = 0; i < count; i++) {
        const d = Math.abs(gpu[i] - cpu[i]);
        if (!(d <= worst)) {
          worst = d;
          worstIndex = i;
        }
      }
      console.log(
        `    ${adapterName}: ${count} normals, grid ${grid.join('x')}, max abs diff GPU vs CPU ${
          worst.toExponential(2)
        } (element ${worstIndex})`,
      );
      // lavapipe agrees to an ulp or two (~5e-7); the bound leaves room for GPUs whose sin/cos
      // are looser (the Vulkan spec allows far more), while any wrong Philox bit errs by O(1).
      assert.ok(worst < 1e-5, `element ${worstIndex}: GPU ${gpu[worstIndex]} vs CPU ${cpu[worstIndex]}`);
    }
    assert.equal(uncapturedErrors, []);
  } finally {
    device.destroy();
  }
});

noise.run();
