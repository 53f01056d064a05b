/**
 * Every shader against its descriptors: the embedded module is what wgsl_reflect reads off the
 * .wgsl files now (bindings, access modes, params offsets), and every node of a real graph binds
 * exactly the shader's inputs and outputs and sets exactly its params fields.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { SHADERS } from '../src/shaders.gen.ts';
import { elementType, generate, SHADER_FOLDERS, shaderFiles } from '../scripts/embed-shaders.mjs';
import { Graph } from '../src/graph/graph.ts';
import { shaderFor, type ShaderSource } from '../src/gpu/shader_source.ts';
import { readUNet } from '../src/models/unet_2d_model.ts';
import { buildUNetGraph } from '../src/models/unet_2d.ts';
import { WeightStore } from '../src/models/weights.ts';
import { TINY_CONFIG, tinyModelFiles } from './util/tiny_model.ts';

const shaders = suite('shaders');

shaders('src/shaders.gen.ts matches the .wgsl files and their reflection', () => {
  // The tests run from the project root (and this module may be bundled elsewhere).
  const root = resolve('.');
  assert.is(readFileSync('src/shaders.gen.ts', 'utf8'), generate(root), 'src/shaders.gen.ts is stale (run node scripts/embed-shaders.mjs)');
  const files = new Map(shaderFiles(root).map((s: { name: string; file: string; code: string }) => [s.name, s]));
  for (const shader of Object.values(SHADERS)) {
    const code = files.get(shader.name)?.code;
    assert.is(shader.code, code, `${shader.name}: embedded code is stale (run node scripts/embed-shaders.mjs)`);
    assert.is(shader.file, files.get(shader.name)?.file, `${shader.name}: file`);
    const reflect = new WgslReflect(code);
    const bindings = [
      ...reflect.storage.map((s) => ({ binding: s.binding, name: s.name, kind: s.access === 'read' ? 'read' : 'read_write' })),
      ...reflect.uniforms.map((u) => ({ binding: u.binding, name: u.name, kind: u.name === 'params' ? 'uniform' : 'read_uniform' })),
    ].sort((a, b) => a.binding - b.binding);
    assert.equal(
      shader.bindings.map(({ name, kind }) => ({ name, kind })),
      bindings.map(({ name, kind }) => ({ name, kind })),
      `${shader.name}: bindings`,
    );
    for (const b of shader.bindings) {
      if (b.kind === 'uniform') continue;
      // The declared element type, 'act' and 'weight' (weight_t) kept (reflection resolves the aliases to f32).
      assert.is(b.element, elementType(shader.name, b.name, code!), `${shader.name}.${b.name}: element type`);
      assert.ok(['act', 'weight', 'f32', 'i32', 'u32'].includes(b.element!), `${shader.name}.${b.name}: element ${b.element}`);
    }
    assert.is(shader.activations, /^alias act = f32;$/m.test(shader.code), `${shader.name}: activations`);
    if (!shader.activations) {
      const bindings: ShaderSource['bindings'] = shader.bindings;
      assert.ok(bindings.every((b) => b.element !== 'act'), `${shader.name}: 'act' without activation.wgsl`);
    }
    bindings.forEach((b, i) => assert.is(b.binding, i, `${shader.name}: binding ${b.name} out of order`));
    const kinds = bindings.map((b) => b.kind).join(',');
    assert.ok(/^((read|read_uniform),)*(read_write,?)+(uniform)?$/.test(kinds), `${shader.name}: inputs, outputs, then params (${kinds})`);
    const params = reflect.uniforms.find((u) => u.name === 'params');
    if (params) {
      assert.is(shader.params?.size, params.size, `${shader.name}: params size`);
      for (const member of (params.type as unknown as { members: { name: string; offset: number; type: { name: string } }[] }).members) {
        assert.equal(
          (shader.params?.fields as Record<string, unknown> | undefined)?.[member.name],
          { offset: member.offset, type: member.type.name },
          `${shader.name}.${member.name}`,
        );
      }
    }
    assert.ok(reflect.entry.compute.some((e) => e.name === 'main'), `${shader.name}: entry point main`);
  }
  const onDisk = SHADER_FOLDERS.flatMap((folder: string) => readdirSync(`shaders/${folder}`).filter((f) => f.endsWith('.wgsl')))
    .map((f: string) => f.slice(0, -5)).sort();
  assert.equal(Object.keys(SHADERS).sort(), onDisk, 'every shaders/<folder>/*.wgsl is embedded');
  console.log(`    ${Object.keys(SHADERS).length} shaders: ${Object.keys(SHADERS).join(', ')}`);
});

shaders("each graph node binds exactly its shader's inputs and outputs and sets exactly its params", () => {
  const model = readUNet(tinyModelFiles());
  for (const precision of ['f32', 'f16'] as const) {
    const graph = buildUNetGraph(model.config, new WeightStore(model.file), { batch: 2, precision });
    // addNode checked every tensor's dtype against its binding's element type.
    for (const node of graph.nodes) assert.is(node.source, shaderFor(SHADERS[node.shader], precision), `${node.name}: shader`);
    const f16Nodes = graph.nodes.filter((n) => n.source.name.endsWith('_f16')).length;
    console.log(`    ${precision}: ${graph.nodes.length} nodes, ${f16Nodes} through f16 variants`);
    if (precision === 'f16') assert.is(f16Nodes, graph.nodes.length, 'an f16 graph runs only f16 variants');
  }
  const graph = buildUNetGraph(model.config, new WeightStore(model.file), { batch: 2 });
  const used = new Set<string>();
  for (const node of graph.nodes) {
    const shader = SHADERS[node.shader];
    used.add(node.shader);
    assert.is(
      node.inputs.length,
      shader.bindings.filter((b) => b.kind === 'read' || b.kind === 'read_uniform').length,
      `${node.name}: inputs`,
    );
    assert.is(node.outputs.length, shader.bindings.filter((b) => b.kind === 'read_write').length, `${node.name}: outputs`);
    assert.equal(Object.keys(node.params).sort(), Object.keys(shader.params?.fields ?? {}).sort(), `${node.name}: params`);
  }
  console.log(`    ${graph.nodes.length} nodes of a ${TINY_CONFIG.block_out_channels.length}-level UNet use ${used.size} shaders`);
});

shaders('a node that binds a tensor of the wrong dtype is refused, naming both', () => {
  const g = new Graph('f16');
  const x = g.input('x', [1, 4]); // f32, where linear's input holds the activations (f16 here)
  const w = g.weight('w', [2, 4], new Float32Array(8));
  const b = g.weight('b', [2], new Float32Array(2));
  assert.throws(
    () =>
      g.addNode({
        name: 'proj',
        kind: 'linear',
        shader: 'linear',
        inputs: [x, w, b],
        outputs: [g.intermediate('y', [1, 2])],
        params: { batch: 1, in_features: 4, out_features: 2, silu_input: 0, silu_output: 0 },
        dispatch: { invocations: [2, 1] },
        flops: 0,
        bytes: 0,
      }),
    (e: Error) => /node 'proj' binds f32 tensor 'x' to linear_f16's 'input', which holds f16/.test(e.message),
  );
});

shaders('f16 variants: the alias replaced and f16 enabled first, nothing else changed', () => {
  for (const shader of Object.values(SHADERS)) {
    const variant = shaderFor(shader, 'f16');
    if (!shader.activations) {
      assert.is(variant, shader, `${shader.name}: no activations, no variant`);
      continue;
    }
    assert.is(variant.name, `${shader.name}_f16`);
    assert.ok(variant.code.startsWith('enable f16;\n'), `${shader.name}: enable f16 first`);
    assert.is(
      variant.code.replace('enable f16;\n', '').replace('alias act = f16;', 'alias act = f32;')
        .replace('const ACT_F16 = true;', 'const ACT_F16 = false;').replace('const WEIGHT_F16 = true;', 'const WEIGHT_F16 = false;'),
      shader.code,
    );
    assert.equal(variant.bindings, shader.bindings);
    assert.equal(variant.params, shader.params);
  }
});

shaders('f16-packed variants: only the large weights change, each read through its unpacking loader', () => {
  for (const shader of Object.values(SHADERS)) {
    const variant = shaderFor(shader, 'f16-packed');
    const weights = shader.bindings.filter((b) => b.element === 'weight').map((b) => b.name);
    if (variant === shader) {
      assert.equal(weights, [], `${shader.name}: binds weight_t arrays, yet runs as at f32`);
      continue;
    }
    assert.is(variant.name, `${shader.name}_f16_packed`);
    assert.ok(variant.code.includes('const WEIGHT_F16 = true;'), `${shader.name}: WEIGHT_F16`);
    let code = variant.code.replace('const WEIGHT_F16 = true;', 'const WEIGHT_F16 = false;');
    for (const name of weights) {
      // Every read of the binding goes through its loader, and the loader is the one place that indexes it.
      const loader = new RegExp(`\\nfn ${name}_at\\(i: u32\\) -> (f32|vec4<f32>) \\{\\n[^}]*\\n\\}`);
      assert.match(code, loader, `${shader.name}: ${name}_at`);
      code = code.replace(loader, '');
      assert.not.match(code.replace(/\/\/.*$/gm, ''), new RegExp(`\\b${name}\\[`), `${shader.name}: ${name} read without unpacking`);
      code = code.replace(
        new RegExp(`(var<storage, read> ${name}: )array<(vec2<)?u32>?>;`),
        (_, head, vector) => `${head}array<${vector ? 'vec4<' : ''}weight_t${vector ? '>' : ''}>;`,
      )
        .replaceAll(`${name}_at(`, `${name}[`);
    }
    // What is left is the f32 shader, but for the loaders' calls (their closing brackets, and a trailing newline).
    assert.is(code.replace(/\]/g, ')').trimEnd(), shader.code.replace(/\]/g, ')').trimEnd(), `${shader.name}: nothing else changed`);
    assert.equal(variant.bindings, shader.bindings);
    assert.equal(variant.params, shader.params);
  }
});

shaders.run();
