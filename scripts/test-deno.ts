// The same test suite under Deno, importing the .ts files directly.
//   deno run -A scripts/test-deno.ts [filters...]
// Without filters, the heavy golden below is left out (and said so) unless DDIM_DENO_FULL=1: the
// Node run checks it on Dawn, and under Deno's wgpu on the software driver it took 41 min here
// (a shared machine), all the other files together 3 min. Everything else runs: Deno's own paths (its
// wgpu for every shader and the UNet golden, Dawn under Deno, file and permission APIs, the CLI,
// progress, the peers). A filter runs any file it names.
import { runSuites, selectTests } from '../test/harness.ts';
import { embedShaders } from './embed-shaders.mjs';

const FULL_ONLY = ['ddim_golden.test.ts'];

const testDir = new URL('../test/', import.meta.url);
const all = [...Deno.readDirSync(testDir)].map((e) => e.name);
let names = selectTests(all, Deno.args);
if (names.length === 0) {
  console.error(`no test file matches ${Deno.args.join(' ')}`);
  Deno.exit(2);
}
if (Deno.args.length === 0 && Deno.env.get('DDIM_DENO_FULL') !== '1') {
  const left = names.filter((n) => FULL_ONLY.includes(n));
  names = names.filter((n) => !FULL_ONLY.includes(n));
  if (left.length) {
    console.log(
      `test-deno: left out ${left.join(', ')} (a heavy golden the Node run checks); ` +
        'DDIM_DENO_FULL=1 or `npm run test:deno:full` runs it too, as does a name filter',
    );
  }
}
// An edited .wgsl is embedded before anything runs (the test modules import the generated module).
if (embedShaders()) console.log('embedded the edited shaders into src/shaders.gen.ts');
const code = await runSuites(names, (n) => import(new URL(n, testDir).href));
Deno.exit(code);
