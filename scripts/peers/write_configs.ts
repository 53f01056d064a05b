/**
 * Writes the benchmark's layouts as diffusers configs, <name>.json, into a folder: emoji32's own
 * config and the cifar10 and celebahq layouts of scripts/layouts.ts. scripts/prepare-device.sh
 * packs them for the PyTorch side (scripts/peers/torch_bench.py), so both sides build one model.
 * Also quick-32.onnx, the tests' two-convolution ONNX model at 32x32: the kit's QUICK run puts it
 * beside emoji32 to check the ORT-web path (emoji32.onnx is too big to pack), measuring nothing.
 *   node scripts/node.mjs scripts/peers/write_configs.ts DIR
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { LAYOUTS } from '../layouts.ts';
import { tinyOnnxModel } from './onnx.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: write_configs.ts DIR');
  process.exit(2);
}
mkdirSync(dir, { recursive: true });
const configs: Record<string, unknown> = { emoji32: JSON.parse(readFileSync('weights/emoji32/config.json', 'utf8')) };
for (const [name, layout] of Object.entries(LAYOUTS)) configs[name] = layout.config;
for (const [name, config] of Object.entries(configs)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(config, null, 2) + '\n');
writeFileSync(join(dir, 'quick-32.onnx'), tinyOnnxModel({ size: 32 }));
console.log(`wrote ${Object.keys(configs).join(', ')} configs to ${dir}`);
