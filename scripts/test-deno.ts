// The same test suite under Deno, importing the .ts files directly.
//   deno run -A scripts/test-deno.ts [filters...]
import { runSuites, selectTests } from '../test/harness.ts';
import { embedShaders } from './embed-shaders.mjs';

const testDir = new URL('../test/', import.meta.url);
const all = [...Deno.readDirSync(testDir)].map((e) => e.name);
const names = selectTests(all, Deno.args);
if (names.length === 0) {
  console.error(`no test file matches ${Deno.args.join(' ')}`);
  Deno.exit(2);
}
// An edited .wgsl is embedded before anything runs (the test modules import the generated module).
if (embedShaders()) console.log('embedded the edited shaders into src/shaders.gen.ts');
const code = await runSuites(names, (n) => import(new URL(n, testDir).href));
Deno.exit(code);
