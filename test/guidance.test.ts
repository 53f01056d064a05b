/**
 * Classifier-free guidance inside the DDIM step (GuidedDenoiser): one forward over [negative,
 * positive], ε = ε_neg + g·(ε_pos − ε_neg) on the GPU, the sampler stepping the guided ε. Checked
 * with a class-conditional tiny UNet whose two halves differ by their class label, against the
 * CPU reference fed with the two halves' outputs at every state of the GPU's trajectory.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { requestGpu } from '../src/gpu/device.ts';
import { GuidedDenoiser } from '../src/models/guidance.ts';
import { randomUNetSafetensors } from '../src/models/random_weights.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { DdimSampler } from '../src/sampler/ddim.ts';
import { philoxNormals } from '../src/sampler/noise.ts';
import { ddimSampleCpu } from '../src/sampler/reference.ts';
import { ddimTimesteps, scheduleFromConfig } from '../src/sampler/schedule.ts';
import { expectClose } from './util/compare.ts';
import { TINY_CONFIG } from './util/tiny_model.ts';

const test = suite('classifier-free guidance');

test('the guided DDIM trajectory follows ε_neg + g·(ε_pos − ε_neg) of the two halves (g = 7.5 and 1.5)', async () => {
  const gpu = await requestGpu();
  const config = { ...TINY_CONFIG, num_class_embeds: 3 };
  const model = readUNet({ config, weights: randomUNetSafetensors(config, 6) });
  const schedule = scheduleFromConfig({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, clip_sample: false });
  const network = await UNet.compile(gpu, model, { batch: 2 });
  const single = await UNet.compile(gpu, model, { batch: 1 });
  try {
    const guided = await GuidedDenoiser.create(gpu, network, 7.5);
    // The halves' conditioning: class 0 as the "negative", class 2 as the "positive".
    guided.beginBatch = () => gpu.device.queue.writeBuffer(network.classLabelBuffer!, 0, Int32Array.of(0, 2));
    const sampler = new DdimSampler(gpu, guided, schedule);
    try {
      assert.equal(guided.sampleShape, [1, 3, 8, 8]);
      const xT = philoxNormals(9, 0, 3 * 8 * 8);
      const ts = ddimTimesteps(4, 'uniform');
      for (const scale of [7.5, 1.5]) {
        guided.setScale(scale);
        const run = await sampler.sample({ steps: 4, xT, trajectory: true });
        const outputs: Float32Array[] = [];
        for (const [k, x] of run.xs!.slice(0, -1).entries()) {
          const t = Int32Array.of(ts[ts.length - 1 - k]);
          const negative = await single.forward(x, t, undefined, Int32Array.of(0));
          const positive = await single.forward(x, t, undefined, Int32Array.of(2));
          outputs.push(negative.map((n, i) => n + scale * (positive[i] - n)));
        }
        let call = 0;
        const cpu = ddimSampleCpu(schedule, xT, ts, () => outputs[call++]);
        expectClose(`guided DDIM-4 x0, g = ${scale}`, run.x0, Float32Array.from(cpu.x), 1e-5);
      }
      // Without guidance the two halves would give one image each: the combination changes the result.
      guided.setScale(1);
      const conditional = await sampler.sample({ steps: 4, xT });
      guided.setScale(0);
      const negative = await sampler.sample({ steps: 4, xT });
      assert.not.equal([...conditional.x0], [...negative.x0]);
    } finally {
      sampler.destroy();
      guided.destroy();
    }
  } finally {
    network.destroy();
    single.destroy();
  }
});

test.run();
