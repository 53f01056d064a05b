/**
 * Compiling side by side on a software adapter under Dawn (Gpu.compileHelper): a second device
 * runs some of the graph's programs first, the device then runs every program once (from the
 * driver's cache for those), and what the pipeline computes does not change.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { tinyModelFiles } from './util/tiny_model.ts';

const helped = suite('compile helper');

/** A fresh device (programs are made once per device), with its helper's pipelines counted. */
async function freshGpu(withHelper: boolean): Promise<{ gpu: Gpu; helperPipelines: string[] }> {
  const gpu = await requestGpu();
  const helperPipelines: string[] = [];
  const make = gpu.compileHelper;
  if (!withHelper || !make) return { gpu: { ...gpu, compileHelper: undefined }, helperPipelines };
  const counted = async () => {
    const device = await make();
    if (!device) return undefined;
    const original = device.createComputePipelineAsync.bind(device);
    device.createComputePipelineAsync = (descriptor: GPUComputePipelineDescriptor) => {
      helperPipelines.push(descriptor.label ?? '');
      return original(descriptor);
    };
    return device;
  };
  return { gpu: { ...gpu, compileHelper: counted }, helperPipelines };
}

helped('with a helper device the UNet compiles the same programs, some of them on the helper first, and samples the same', async () => {
  const results: Float32Array[] = [];
  for (const withHelper of [false, true]) {
    const { gpu, helperPipelines } = await freshGpu(withHelper);
    const progress: string[] = [];
    const pipeline = await DdimPipeline.load(gpu, tinyModelFiles(), {
      batch: 2,
      onCompileProgress: ({ compiled, total }) => progress.push(`${compiled}/${total}`),
    });
    try {
      results.push((await pipeline.sample({ steps: 4, count: 2, seed: 3, eta: 1 })).x0);
      console.log(
        `    ${withHelper ? 'helper' : 'alone'} on ${gpu.adapterName}: helper made ${helperPipelines.length} pipelines ` +
          `(${helperPipelines.join(', ')}); progress ${progress.join(' ')}`,
      );
      const last = progress.at(-1)!.split('/');
      assert.is(last[0], last[1], 'every program reported compiled');
      if (withHelper && /llvmpipe|lavapipe|SwiftShader/i.test(gpu.adapterName) && gpu.implementation === 'dawn') {
        // The tiny UNet has 5 programs, longest first, taken by whichever device is free.
        assert.ok(helperPipelines.length >= 1, 'the helper compiled some programs');
        assert.ok(helperPipelines.length < 5, 'and the device others');
      }
    } finally {
      pipeline.destroy();
      gpu.device.destroy();
    }
  }
  assert.equal(results[1], results[0], 'the same samples, bit for bit');
});

helped.run();
