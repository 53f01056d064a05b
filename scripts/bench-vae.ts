/**
 * Benchmarks an autoencoder's decoder (and, with --encode, its encoder) at the image sizes asked,
 * with the shape of a real config and random weights (nothing is downloaded), on this machine's
 * WebGPU adapter under WebGPU's default limits (what a page gets without asking: 128 MiB per
 * binding, 256 MiB per buffer) unless --device-limits: time per image, the GPU memory held, the
 * largest single binding, and whether the image was split into tiles. Runs under Deno and Node.
 *
 *   node scripts/node.mjs scripts/bench-vae.ts [--config DIR] [--sizes 256,512] [--repeats N] [--encode] [--json FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import process from 'node:process';
import { requestGpu } from '../src/gpu/device.ts';
import { parseSafetensors } from '../src/io/safetensors.ts';
import { Autoencoder } from '../src/models/autoencoder_model.ts';
import { downscaleFactor, parseAutoencoderConfig } from '../src/models/autoencoder_config.ts';
import { randomAutoencoderSafetensors } from '../src/models/random_weights.ts';
import { compare } from '../test/util/compare_values.ts';

const USAGE = `usage: bench-vae [--config DIR] [--sizes 256,512] [--repeats N] [--encode] [--device-limits] [--json FILE]
  --config DIR       a folder with an autoencoder's config.json (default ../shared/golden/sd/configs/sd15/vae)
  --sizes LIST       image sizes in pixels, square (default 256,512)
  --repeats N        timed passes per size after one untimed (default 1)
  --encode           time the encoder too
  --device-limits    the adapter's own limits instead of WebGPU's defaults
  --compare-tiles M  also decode each size with a binding limit of M MiB (split into tiles) and print how far
                     that is from the decode under the run's limits (relative L2)
  --json FILE        the results as JSON`;

/** WebGPU's default limits: what a page gets without asking for more. */
const DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 };

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
const configDir = option('config') ?? '../shared/golden/sd/configs/sd15/vae';
const sizes = (option('sizes') ?? '256,512').split(',').map(Number);
const repeats = Number(option('repeats') ?? 1);
if (sizes.some((s) => !Number.isInteger(s) || s <= 0) || !Number.isInteger(repeats) || repeats < 1) {
  console.error(USAGE);
  process.exit(2);
}
const rawConfig = JSON.parse(readFileSync(`${configDir}/config.json`, 'utf8'));
const config = parseAutoencoderConfig(rawConfig);
const f = downscaleFactor(config);
const gpu = await requestGpu();
const limits = process.argv.includes('--device-limits') ? {} : DEFAULT_LIMITS;
console.log(`adapter: ${gpu.adapterName}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(
  `limits: ${
    process.argv.includes('--device-limits')
      ? `the adapter's (binding ${(gpu.device.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB)`
      : "WebGPU's defaults (binding 128 MiB, buffer 256 MiB)"
  }`,
);
const start = performance.now();
const weights = { config, file: parseSafetensors(randomAutoencoderSafetensors(rawConfig, 1)) };
console.log(`${config.className} from ${configDir}: random weights made in ${((performance.now() - start) / 1000).toFixed(1)} s`);

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const results: Record<string, unknown>[] = [];
for (const size of sizes) {
  for (const part of process.argv.includes('--encode') ? ['decode', 'encode'] as const : ['decode'] as const) {
    const vae = Autoencoder.load(gpu, weights, { limits });
    try {
      const latent = size / f;
      const tile = vae.tileSize(part === 'decode' ? 'decoder' : 'encoder', latent, latent);
      const z = new Float32Array(config.latentChannels * latent * latent).map((_, i) => Math.sin(i * 0.37));
      const image = new Float32Array(config.inChannels * size * size).map((_, i) => Math.sin(i * 0.11));
      const run = () =>
        part === 'decode' ? vae.decode(z, [1, config.latentChannels, latent, latent]) : vae.encode(image, [1, 3, size, size]);
      const first = performance.now();
      await run(); // compiles the graphs it needs
      const firstMs = performance.now() - first;
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const t = performance.now();
        await run();
        times.push(performance.now() - t);
      }
      const memory = vae.memory();
      const ms = Math.min(...times);
      const entry = {
        part,
        size,
        ms,
        firstMs,
        tile: tile === null ? null : tile * f,
        peakBytes: memory.weightBytes + memory.activationBytes,
        weightBytes: memory.weightBytes,
        activationBytes: memory.activationBytes,
        largestBindingBytes: memory.largestBindingBytes,
        graphs: memory.graphs,
      };
      const compareLimit = option('compare-tiles');
      if (compareLimit !== undefined && part === 'decode') {
        const tiled = Autoencoder.load(gpu, weights, {
          limits: { ...limits, maxStorageBufferBindingSize: Number(compareLimit) * 2 ** 20 },
        });
        try {
          const whole = await vae.decode(z, [1, config.latentChannels, latent, latent]);
          const split = await tiled.decode(z, [1, config.latentChannels, latent, latent]);
          const t = tiled.tileSize('decoder', latent, latent);
          const c = compare(split.image, whole.image);
          Object.assign(entry, {
            tiledComparison: { bindingLimitMiB: Number(compareLimit), tile: t === null ? null : t * f, relL2: c.relL2, maxAbs: c.maxAbs },
          });
          console.log(
            `  tiles of ${t === null ? 'none' : `${t * f}²`} under ${compareLimit} MiB vs this decode: rel L2 ${
              c.relL2.toExponential(2)
            }, max |diff| ${c.maxAbs.toExponential(2)}`,
          );
        } finally {
          tiled.destroy();
        }
      }
      results.push(entry);
      console.log(
        `${part} ${size}²: ${(ms / 1000).toFixed(2)} s (first ${(firstMs / 1000).toFixed(2)} s with compiling); ${
          tile === null ? 'one pass' : `tiles of ${tile * f}² px`
        }; GPU memory ${MiB(entry.peakBytes)} (weights ${MiB(memory.weightBytes)}, activations ${
          MiB(memory.activationBytes)
        } in ${memory.graphs} graphs); largest binding ${MiB(memory.largestBindingBytes)}`,
      );
    } finally {
      vae.destroy();
    }
  }
}
const jsonPath = option('json');
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify({ adapter: gpu.adapterName, config: configDir, limits, results }, null, 2));
}
gpu.device.destroy();
