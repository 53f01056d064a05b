#!/usr/bin/env node
// Embeds the shaders into src/shaders.gen.ts, with each shader's bindings and the byte layout of
// its `Params` uniform read off the WGSL by wgsl_reflect, so Node, Deno and the browser import
// shaders the same way and no uniform offset is ever computed by hand.
//
//   shaders/ops/*.wgsl       one per graph op (src/ops/<op>.ts says which it dispatches)
//   shaders/sampler/*.wgsl   the DDIM update and the noise generator (src/sampler/)
//   shaders/bench/*.wgsl     the benchmark's plain matmuls (src/profile/matmul.ts)
//   shaders/include/*.wgsl   shared WGSL, pasted where a shader has a line `#include "name.wgsl"`
//
// A shader's name is its file name. The test and build scripts run this before they start, so an
// edited .wgsl is never left out; CI checks the checked-in module is current (--check).
//   node scripts/embed-shaders.mjs          writes the module if it changed
//   node scripts/embed-shaders.mjs --check  exits 1 if the module is stale
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';

// The project root; a test bundled elsewhere passes its own.
const projectRoot = resolve(import.meta.dirname, '..');
const target = resolve(projectRoot, 'src', 'shaders.gen.ts');
export const SHADER_FOLDERS = ['ops', 'sampler', 'bench'];
/** shaders/include/activation.wgsl's one declaration. */
const ACTIVATION_ALIAS = 'alias act = f32;';

/** The shader's text with every `#include "name.wgsl"` line replaced by shaders/include/name.wgsl. */
export function expandIncludes(name, code, root = projectRoot, seen = []) {
  return code.replace(/^#include "([\w.-]+\.wgsl)"[ \t]*$/gm, (_, file) => {
    if (seen.includes(file)) throw new Error(`${name}.wgsl: ${file} includes itself (${[...seen, file].join(' -> ')})`);
    const path = resolve(root, 'shaders', 'include', file);
    if (!existsSync(path)) throw new Error(`${name}.wgsl: #include "${file}": no such file in shaders/include/`);
    return expandIncludes(name, readFileSync(path, 'utf8'), root, [...seen, file]).replace(/\n$/, '');
  }).replace(/^#.*$/m, (line) => {
    throw new Error(`${name}.wgsl: unknown directive: ${line}`);
  });
}

/**
 * The scalar type of a buffer binding's elements as the WGSL spells it ('act' for activation.wgsl's
 * alias, which reflection resolves to f32; 'weight' for its `weight_t`, a large weight): the graph
 * checks each tensor's dtype against it.
 */
export function elementType(shader, binding, code) {
  const declaration = new RegExp(`var<[^>]*>\\s+${binding}\\s*:\\s*([^;]+);`).exec(code);
  const scalar = declaration && /\b(act|weight_t|f32|f16|i32|u32)\b/.exec(declaration[1]);
  if (!scalar) throw new Error(`${shader}.wgsl: cannot tell the element type of binding ${binding}`);
  return scalar[1] === 'weight_t' ? 'weight' : scalar[1];
}

export function describeShader(name, code) {
  const reflect = new WgslReflect(code);
  const entry = reflect.entry.compute.find((e) => e.name === 'main');
  if (!entry) throw new Error(`${name}.wgsl: no @compute entry point named main`);
  const bindings = [];
  for (const s of reflect.storage) {
    bindings.push({ name: s.name, group: s.group, binding: s.binding, kind: s.access === 'read' ? 'read' : 'read_write' });
  }
  // The uniform named `params` holds the dispatch's parameters; any other uniform is an input
  // (weights read through a uniform binding, which some drivers load much faster).
  for (const u of reflect.uniforms) {
    bindings.push({ name: u.name, group: u.group, binding: u.binding, kind: u.name === 'params' ? 'uniform' : 'read_uniform' });
  }
  bindings.sort((a, b) => a.group - b.group || a.binding - b.binding);
  for (const [i, b] of bindings.entries()) {
    if (b.group !== 0 || b.binding !== i) {
      throw new Error(`${name}.wgsl: bindings must be @group(0) @binding(0..n) in order; ${b.name} is at ${b.group}/${b.binding}`);
    }
  }
  const uniformIndex = bindings.findIndex((b) => b.kind === 'uniform');
  if (uniformIndex !== -1 && uniformIndex !== bindings.length - 1) {
    throw new Error(`${name}.wgsl: the params uniform must be the last binding`);
  }
  let params = null;
  if (uniformIndex !== -1) {
    const u = reflect.uniforms.find((u) => u.name === 'params');
    const fields = {};
    for (const m of u.type.members) {
      const type = m.type.name;
      if (!['u32', 'i32', 'f32'].includes(type)) {
        throw new Error(`${name}.wgsl: params field ${m.name} must be a u32, i32 or f32 scalar, not ${type}`);
      }
      fields[m.name] = { offset: m.offset, type };
    }
    params = { size: u.size, fields };
  }
  const firstWrite = bindings.findIndex((b) => b.kind === 'read_write');
  for (const [i, b] of bindings.entries()) {
    if ((b.kind === 'read' || b.kind === 'read_uniform') && firstWrite !== -1 && i > firstWrite) {
      throw new Error(`${name}.wgsl: inputs must come before outputs (${b.name})`);
    }
  }
  // Shaders that include activation.wgsl store activations as its `act`, which the engine makes
  // f16 for its f16 graphs (src/gpu/shader_source.ts).
  const aliases = code.split('\n').filter((line) => line === ACTIVATION_ALIAS).length;
  if (aliases > 1) throw new Error(`${name}.wgsl: activation.wgsl is included ${aliases} times`);
  return {
    bindings: bindings.map((b) => ({
      name: b.name,
      kind: b.kind,
      ...(b.kind === 'uniform' ? {} : { element: elementType(name, b.name, code) }),
    })),
    params,
    workgroupSize: entry.workgroupSize ?? [1, 1, 1],
    activations: aliases === 1,
  };
}

/** Every shader: { name, file (from the project root), code (includes expanded) }, by name. */
export function shaderFiles(root = projectRoot) {
  const shaders = [];
  for (const folder of SHADER_FOLDERS) {
    for (const f of readdirSync(resolve(root, 'shaders', folder)).filter((f) => f.endsWith('.wgsl')).sort()) {
      const name = f.replace(/\.wgsl$/, '');
      if (shaders.some((s) => s.name === name)) throw new Error(`shader name ${name} is used twice (${folder}/${f})`);
      const file = `shaders/${folder}/${f}`;
      shaders.push({ name, file, code: expandIncludes(name, readFileSync(resolve(root, file), 'utf8'), root) });
    }
  }
  return shaders.sort((a, b) => (a.name < b.name ? -1 : 1));
}

export function generate(root = projectRoot) {
  let out = '// Generated by scripts/embed-shaders.mjs from shaders/*/*.wgsl: do not edit.\n';
  out += "import type { ShaderSource } from './gpu/shader_source.ts';\n\n";
  out += 'export const SHADERS = {\n';
  for (const { name, file, code } of shaderFiles(root)) {
    const info = describeShader(name, code);
    out += `  ${JSON.stringify(name)}: {\n    name: ${JSON.stringify(name)},\n    file: ${JSON.stringify(file)},\n`;
    out += `    code: ${JSON.stringify(code)},\n`;
    out += `    bindings: ${JSON.stringify(info.bindings)},\n    params: ${JSON.stringify(info.params)},\n`;
    out += `    workgroupSize: ${JSON.stringify(info.workgroupSize)},\n    activations: ${info.activations},\n  },\n`;
  }
  out += '} satisfies Record<string, ShaderSource>;\n\nexport type ShaderName = keyof typeof SHADERS;\n';
  return out;
}

/** Writes the module if it differs; returns whether it did. */
export function embedShaders() {
  const text = generate();
  const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
  if (current === text) return false;
  writeFileSync(target, text);
  return true;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--check')) {
    const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
    if (current !== generate()) {
      console.error('src/shaders.gen.ts is stale: run `node scripts/embed-shaders.mjs`');
      process.exit(1);
    }
    console.log('src/shaders.gen.ts is current');
  } else {
    console.log(embedShaders() ? `wrote ${target}` : `${target} is current`);
  }
}
