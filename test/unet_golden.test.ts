import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { type Backend, requestGpu } from '../src/gpu/device.ts';
import { readUNet, UNet } from '../src/model/unet_model.ts';
import { expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { kernelsFromEnv, kernelsNote } from './util/kernels_env.ts';

const TOLERANCE = 2e-4;
/** emoji32's dispatches per forward, held so that a fusion undone shows up. */
const EMOJI32_DISPATCHES = 138;

function loadModelDir(dir: string) {
  return readUNet({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
  });
}

const silu = (x: Float32Array) => x.map((v) => v / (1 + Math.exp(-v)));

/** Dispatches per forward by kind, printed (issue 11's budget is 100 for emoji32). */
function countDispatches(nodes: readonly { kind: string }[]): string {
  const kinds = new Map<string, number>();
  for (const node of nodes) kinds.set(node.kind, (kinds.get(node.kind) ?? 0) + 1);
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([kind, count]) => `${kind} ${count}`).join(', ');
}

async function checkModel(modelDir: string, goldenFile: string, backend: Backend = 'auto', maxDispatches = Infinity) {
  const gpu = await requestGpu({ backend });
  console.log(`    adapter: ${gpu.adapterName}${kernelsNote()}`);
  const golden = readGolden(goldenFile);
  const captured = [...golden.tensors.keys()].filter((k) => k.startsWith('act.')).map((k) => k.slice(4));
  const x = goldenF32(golden, 'input.x');
  const t = goldenI32(golden, 'input.t');
  const model = loadModelDir(modelDir);
  const unet = await UNet.compile(gpu, model, {
    batch: t.length,
    capture: captured.filter((n) => n !== 'conv_out'),
    kernels: kernelsFromEnv(),
  });
  try {
    const nodes = unet.compiled.nodeList;
    console.log(`    dispatches per forward: ${nodes.length} (${countDispatches(nodes)})`);
    assert.ok(nodes.length <= maxDispatches, `${nodes.length} dispatches per forward, more than ${maxDispatches}`);
    const eps = await unet.forward(x, t);
    for (const name of captured.sort()) {
      const actual = name === 'conv_out' ? eps : await unet.read(name);
      // The engine fuses the final SiLU into conv_norm_out; the reference records it before.
      const reference = name === 'conv_norm_out' ? silu(goldenF32(golden, `act.${name}`)) : goldenF32(golden, `act.${name}`);
      expectClose(name === 'conv_norm_out' ? 'silu(conv_norm_out)' : name, actual, reference, TOLERANCE);
    }
    expectClose('output.eps', eps, goldenF32(golden, 'output.eps'), TOLERANCE);
  } finally {
    unet.destroy();
  }
}

const golden = suite('unet golden');

golden('emoji32: eps and every named intermediate match diffusers', async () => {
  await checkModel('weights/emoji32', 'emoji32_unet.safetensors', 'auto', EMOJI32_DISPATCHES);
});

golden('tiny64_legacy: legacy attention names, multi-head, six levels', async () => {
  await checkModel('../shared/golden/tiny64_legacy', 'tiny64_unet.safetensors');
});

// Deno runs the suite on its own WebGPU (wgpu); this checks Dawn under Deno as well.
if ('Deno' in globalThis) {
  golden('emoji32 under Deno through Dawn (npm:webgpu)', async () => {
    await checkModel('weights/emoji32', 'emoji32_unet.safetensors', 'dawn');
  });
}

golden.run();
