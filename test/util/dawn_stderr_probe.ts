/**
 * Run by test/dawn_stderr.test.ts under Node, or under Deno with Dawn (npm:webgpu, what the CLI
 * takes on a software adapter there): makes a device the way every run does, with lines of its own
 * on stderr before and after (through the runtime's stream and straight to fd 2), and says on
 * stdout which adapter it got and which of Dawn's notes were held back.
 */
import { writeSync } from 'node:fs';
import { requestGpu } from '../../src/gpu/device.ts';

console.error('probe: stderr before');
const gpu = await requestGpu({ backend: (globalThis as { Deno?: unknown }).Deno ? 'dawn' : 'auto' });
console.error('probe: stderr after');
writeSync(2, 'probe: fd 2 after\n');
console.log(JSON.stringify({ adapter: gpu.adapterName, notes: gpu.adapterNotes }));
gpu.device.destroy();
