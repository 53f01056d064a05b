import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { requestGpu } from '../src/gpu/device.ts';

const gpu = suite('gpu');

gpu('a device is found and runs a compute shader', async () => {
  const { device, adapterName } = await requestGpu();
  console.log(`    adapter: ${adapterName}`);
  const module = device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, read_write> data: array<f32>;
           @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
             if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0 + 1.0; } }`,
  });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const input = new Float32Array(100).map((_, i) => i);
  const buffer = device.createBuffer({
    size: input.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, input);
  const readback = device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer } }] }));
  pass.dispatchWorkgroups(2);
  pass.end();
  encoder.copyBufferToBuffer(buffer, 0, readback, 0, input.byteLength);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(readback.getMappedRange().slice(0));
  readback.unmap();
  for (let i = 0; i < 100; i++) assert.is(out[i], i * 2 + 1);
  device.destroy();
});

gpu.run();
