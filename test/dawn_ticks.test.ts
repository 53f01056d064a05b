import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dawnTicksSpaced, isDawnTick } from '../src/gpu/dawn_ticks.ts';
import { requestGpu } from '../src/gpu/device.ts';
import { isSoftwareAdapter } from '../src/gpu/adapter.ts';

const ticks = suite('dawn ticks');

ticks("only Dawn's tick callback is recognised: a script's functions, resolvers and built-ins are not", () => {
  assert.not.ok(isDawnTick(() => {}, 0), 'arrow function');
  assert.not.ok(isDawnTick(function () {}, 0), 'anonymous function expression');
  let resolver: unknown;
  new Promise((resolve) => (resolver = resolve));
  assert.not.ok(isDawnTick(resolver, 0), "a promise's resolve function (one parameter)");
  assert.not.ok(isDawnTick((() => {}).bind(null), 0), 'a bound function (named "bound ")');
  assert.not.ok(isDawnTick(Math.random, 0), 'a built-in (named)');
  assert.not.ok(isDawnTick('not a function', 0));
});

ticks("on a software adapter under Dawn, Dawn's polling goes through setTimeout while the device lives", async () => {
  const gpu = await requestGpu();
  const spaced = gpu.implementation === 'dawn' && isSoftwareAdapter(gpu.adapter);
  console.log(`    adapter: ${gpu.adapterName}; ticks spaced: ${dawnTicksSpaced(gpu.device)}`);
  assert.is(dawnTicksSpaced(gpu.device), spaced);
  if (spaced) assert.ok(dawnTicksSpaced());
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const originalTimeout = g.setTimeout;
  let nativeTimeouts = 0;
  let allTimeouts = 0;
  g.setTimeout = (callback: unknown, ...rest: unknown[]) => {
    allTimeouts++;
    if (isDawnTick(callback, 0)) nativeTimeouts++;
    return originalTimeout(callback, ...rest);
  };
  try {
    // Work that outlasts a good many ticks (64 workgroups: a tenth of a second or more on
    // lavapipe), so that Dawn polls for it however quickly the machine runs it: with one workgroup
    // the work once finished before Dawn needed a tick, in a full run.
    const { device } = gpu;
    const module = device.createShaderModule({
      code: `@group(0) @binding(0) var<storage, read_write> data: array<u32>;
             @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
               var x = id.x;
               for (var i = 0u; i < 200000u; i++) { x = x * 1664525u + 1013904223u; }
               data[id.x] = x; }`,
    });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const buffer = device.createBuffer({ size: 64 * 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const readback = device.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer } }] }),
    );
    pass.dispatchWorkgroups(64);
    pass.end();
    encoder.copyBufferToBuffer(buffer, 0, readback, 0, 256);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    let expected = 5;
    for (let i = 0; i < 200000; i++) expected = (Math.imul(expected, 1664525) + 1013904223) >>> 0;
    assert.is(new Uint32Array(readback.getMappedRange())[5], expected, 'the work completes, and right');
    readback.unmap();
    // A script's own setImmediate is untouched: it does not become a timeout.
    if (typeof g.setImmediate === 'function') {
      const before = allTimeouts;
      await new Promise((resolve) => g.setImmediate(resolve));
      await new Promise((resolve) => g.setImmediate(() => resolve(undefined)));
      assert.is(allTimeouts, before, "a script's setImmediate went through as it came");
    }
  } finally {
    g.setTimeout = originalTimeout;
  }
  if (spaced) assert.ok(nativeTimeouts > 0, "Dawn's ticks were scheduled by setTimeout");
  else assert.is(nativeTimeouts, 0);
  gpu.device.destroy();
  await gpu.lost;
  assert.not.ok(dawnTicksSpaced(gpu.device), 'no longer once the device is gone');
});

ticks.run();
