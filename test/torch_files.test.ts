/**
 * The PyTorch file reader on files written here (every dtype, strided views, shared storages,
 * deflate, both formats), what it refuses, and a fuzz of the pickle and the zip: every mutation
 * must end in a TorchFileError or a load whose tensors lie inside the file and match their shape.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DTYPE_SIZES, parseSafetensors, toFloat32 } from '../src/io/safetensors.ts';
import { float32ToFloat16 } from '../src/io/half.ts';
import { parseTorchFile, readTorchFile, stateDictEntries, TorchFileError } from '../src/io/torch.ts';
import { parseWeightsFile, prepareWeights } from '../src/io/weights_file.ts';
import { statePickle, type StorageSpec, type TensorSpec, torchSaveLegacy, torchSaveZip, zip } from './util/torch_save.ts';
import { mulberry32, pick } from './util/random.ts';

const s = suite('torch files');

const f32 = (values: number[]): StorageSpec => ({ dtype: 'F32', bytes: new Uint8Array(Float32Array.from(values).buffer) });
const f64 = (values: number[]): StorageSpec => ({ dtype: 'F64', bytes: new Uint8Array(Float64Array.from(values).buffer) });
const f16 = (values: number[]): StorageSpec => ({ dtype: 'F16', bytes: new Uint8Array(Uint16Array.from(values, float32ToFloat16).buffer) });
// bfloat16: the high half of a float32 (exact for these values).
const bf16 = (values: number[]): StorageSpec => ({
  dtype: 'BF16',
  bytes: new Uint8Array(Uint16Array.from(new Uint32Array(Float32Array.from(values).buffer), (b) => b >>> 16).buffer),
});

/** A 2x3 matrix, its transpose as a strided view of the same storage, a slice, and other dtypes. */
function sample(): { tensors: Record<string, TensorSpec>; storages: Record<string, StorageSpec> } {
  return {
    storages: {
      '0': f32([0, 1, 2, 3, 4, 5, 6, 7]),
      '1': f64([0.5, -1.25, 1e-3]),
      '2': f16([1, -2, 0.5, 65504]),
      '3': bf16([1, -3, 0.375]),
    },
    tensors: {
      'matrix': { storage: '0', shape: [2, 3] },
      'matrix.T': { storage: '0', shape: [3, 2], stride: [1, 3] },
      'tail': { storage: '0', offset: 6, shape: [2] },
      'double': { storage: '1', shape: [3] },
      'half': { storage: '2', shape: [2, 2] },
      'bfloat': { storage: '3', shape: [3] },
      'empty': { storage: '0', shape: [0, 4] },
    },
  };
}

const EXPECTED: Record<string, number[]> = {
  'matrix': [0, 1, 2, 3, 4, 5],
  'matrix.T': [0, 3, 1, 4, 2, 5],
  'tail': [6, 7],
  'double': [0.5, -1.25, Math.fround(1e-3)],
  'half': [1, -2, 0.5, 65504],
  'bfloat': [1, -3, 0.375],
  'empty': [],
};

function checkSample(file: ReturnType<typeof stateDictEntries>, label: string): void {
  assert.equal([...file.tensors.keys()].sort(), Object.keys(EXPECTED).sort(), `${label}: names`);
  for (const [name, values] of Object.entries(EXPECTED)) {
    assert.equal([...toFloat32(file.tensors.get(name)!)], values, `${label}: ${name}`);
  }
  assert.equal(file.tensors.get('matrix.T')!.shape, [3, 2]);
}

s('zip (stored and deflated) and legacy files: every dtype, strided views, shared storages', async () => {
  const { tensors, storages } = sample();
  const stored = await torchSaveZip(tensors, storages);
  const zipped = stateDictEntries(parseTorchFile(stored).value);
  checkSample(zipped, 'zip');
  assert.ok(zipped.tensors.get('matrix')!.bytes.buffer === stored.buffer, 'contiguous tensors are views of the file');
  assert.equal(['double', 'half', 'bfloat'].map((n) => zipped.tensors.get(n)!.dtype), ['F64', 'F16', 'BF16'], 'dtypes kept');
  checkSample(stateDictEntries((await readTorchFile(stored)).value), 'zip, async');
  checkSample(stateDictEntries(parseTorchFile(torchSaveLegacy(tensors, storages)).value), 'legacy');

  const deflated = await torchSaveZip(tensors, storages, { deflate: true });
  checkSample(stateDictEntries((await readTorchFile(deflated)).value), 'deflated');
  try {
    parseTorchFile(deflated);
    assert.unreachable('the synchronous reader cannot inflate');
  } catch (error) {
    assert.instance(error, TorchFileError);
    assert.match((error as Error).message, /deflate-compressed: read the file with readTorchFile/);
  }
  // The loaders hand a deflated file on as safetensors, which the synchronous readers take.
  const prepared = await prepareWeights(deflated);
  checkSample(parseSafetensors(prepared), 'deflated, prepared');
  assert.is(await prepareWeights(stored), stored, 'an uncompressed file is passed on as it is');
  checkSample(parseWeightsFile(stored), 'parseWeightsFile');
  console.log(`    zip ${stored.length} bytes, deflated ${deflated.length}, legacy ${torchSaveLegacy(tensors, storages).length}`);
});

/** The error a file gives, which must be a TorchFileError. */
async function refusal(bytes: Uint8Array): Promise<string> {
  try {
    stateDictEntries((await readTorchFile(bytes)).value);
  } catch (error) {
    assert.instance(error, TorchFileError, `a TorchFileError, not ${(error as Error).stack}`);
    return (error as Error).message;
  }
  return assert.unreachable('expected a TorchFileError') as never;
}

/** A zip holding one pickle made of these bytes. */
const pickleFile = (pickle: number[], storages: Record<string, Uint8Array> = {}) =>
  zip({
    'a/data.pkl': Uint8Array.from(pickle),
    ...Object.fromEntries(Object.entries(storages).map(([k, v]) => [`a/data/${k}`, v])),
  });
const text = (t: string) => [...new TextEncoder().encode(t)];

s("an OrderedDict with attributes (state_dict()'s _metadata, set by BUILD) reads as a dict of its items", async () => {
  // OrderedDict() REDUCE, then BUILD {'_metadata': {}}: attributes, not items.
  const bytes = await pickleFile([
    0x80,
    2,
    0x63,
    ...text('collections\nOrderedDict\n'),
    0x29,
    0x52,
    0x7d,
    0x28,
    0x58,
    9,
    0,
    0,
    0,
    ...text('_metadata'),
    0x7d,
    0x75,
    0x62,
    0x2e,
  ]);
  const { value } = await readTorchFile(bytes);
  assert.instance(value, Map);
  assert.is(value.size, 0);
});

s('refuses globals by name, code, tensors outside their storage, and broken files', async () => {
  const cases: [string, Uint8Array | Promise<Uint8Array>, RegExp][] = [
    // GLOBAL 'posix system' ('touch x',) REDUCE: refused at the GLOBAL, before any call.
    ['os.system', pickleFile([0x80, 2, 0x63, ...text('posix\nsystem\n'), 0x58, 1, 0, 0, 0, 0x78, 0x85, 0x52, 0x2e]), /'posix\.system'/],
    ['builtins.eval', pickleFile([0x80, 2, 0x63, ...text('builtins\neval\n'), 0x2e]), /'builtins\.eval'/],
    // STACK_GLOBAL: the names come from strings on the stack.
    ['STACK_GLOBAL', pickleFile([0x80, 4, 0x8c, 2, ...text('os'), 0x8c, 6, ...text('system'), 0x93, 0x2e]), /'os\.system'/],
    ['INST', pickleFile([0x80, 2, 0x28, 0x69, ...text('os\nsystem\n'), 0x2e]), /INST, which instantiates a class/],
    ['BUILD on a list', pickleFile([0x80, 2, 0x5d, 0x7d, 0x62, 0x2e]), /BUILD .* is not allowed/],
    ['calling a string', pickleFile([0x80, 2, 0x58, 1, 0, 0, 0, 0x78, 0x29, 0x52, 0x2e]), /cannot be called/],
    ['no STOP', pickleFile([0x80, 2, 0x7d]), /ended before STOP/],
    ['huge string length', pickleFile([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e]), /needs 2147483647 bytes but 1 are left/],
    ['memo never stored', pickleFile([0x80, 2, 0x68, 7, 0x2e]), /memo entry 7 was never stored/],
    ['protocol 1', pickleFile([0x80, 1, 0x4e, 0x2e]), /protocol 1 is not read/],
    ['not a state dict', pickleFile([0x80, 2, 0x5d, 0x2e]), /holds a list of 0, not a state dict/],
    ['no data.pkl', zip({ 'a/other': Uint8Array.of(1) }), /no NAME\/data\.pkl/],
    [
      'not a zip at all',
      Promise.resolve(new TextEncoder().encode('PK\x03\x04 but nothing more')),
      /truncated archive|no end of central directory/,
    ],
  ];
  const { tensors, storages } = sample();
  const outside = { ...tensors, 'matrix': { storage: '0', offset: 4, shape: [2, 3] } };
  cases.push(['tensor past its storage', torchSaveZip(outside, storages), /reaches past its storage of 8 elements/]);
  const repeated = { 'x': { storage: '1', shape: [4, 3], stride: [0, 1] } };
  cases.push(['expanded view', torchSaveZip(repeated, storages), /repeats the elements of its storage/]);
  const wrongSize = await torchSaveZip(tensors, { ...storages, '1': { dtype: 'F64', bytes: new Uint8Array(20) } }, {
    pickle: statePickle(tensors, storages),
  });
  cases.push(['storage of a wrong size', Promise.resolve(wrongSize), /has 20 bytes but .* need/]);
  cases.push(['truncated legacy', Promise.resolve(torchSaveLegacy(tensors, storages).slice(0, -3)), /runs past the end of the file/]);
  for (const [label, file, pattern] of cases) {
    const message = await refusal(await file);
    console.log(`    ${label.padEnd(26)} ${message.slice(0, 110)}`);
    assert.match(message, pattern, label);
  }
});

// ---------------------------------------------------------------------------------------------
// Fuzz

const OPCODES = [
  0x28,
  0x29,
  0x2e,
  0x30,
  0x31,
  0x32,
  0x4a,
  0x4b,
  0x4d,
  0x4e,
  0x51,
  0x52,
  0x58,
  0x5d,
  0x61,
  0x62,
  0x63,
  0x65,
  0x68,
  0x71,
  0x73,
];
const ODD_INTS = [0, 1, 2, 7, 255, 65535, 2 ** 31 - 1, 2 ** 32 - 1];

/** Mutations of the pickle itself (the zip around it rebuilt), and of the zip's bytes. */
const PICKLE_MUTATIONS: Record<string, (p: Uint8Array, random: () => number) => Uint8Array> = {
  'byte flip': (p, random) => {
    const out = p.slice();
    out[Math.floor(random() * out.length)] ^= 1 + Math.floor(random() * 255);
    return out;
  },
  'opcode swap': (p, random) => {
    const out = p.slice();
    out[Math.floor(random() * out.length)] = pick(random, OPCODES);
    return out;
  },
  'delete bytes': (p, random) => {
    const at = Math.floor(random() * p.length);
    const n = 1 + Math.floor(random() * 4);
    return Uint8Array.from([...p.subarray(0, at), ...p.subarray(at + n)]);
  },
  'insert opcode': (p, random) => {
    const at = Math.floor(random() * p.length);
    return Uint8Array.from([...p.subarray(0, at), pick(random, OPCODES), ...p.subarray(at)]);
  },
  'odd integer': (p, random) => {
    // Rewrite a BININT1/BININT2 argument (sizes, strides, offsets, numel) to an odd value.
    const at = [...p.keys()].filter((i) => p[i] === 0x4b || p[i] === 0x4d);
    if (at.length === 0) return p;
    const i = pick(random, at);
    const value = pick(random, ODD_INTS);
    const encoded = value < 256
      ? [0x4b, value]
      : value < 65536
      ? [0x4d, value & 255, value >> 8]
      : [0x4a, ...new Uint8Array(Uint32Array.of(value).buffer)];
    return Uint8Array.from([...p.subarray(0, i), ...encoded, ...p.subarray(i + (p[i] === 0x4b ? 2 : 3))]);
  },
  truncation: (p, random) => p.slice(0, Math.floor(random() * p.length)),
};

function checkLoaded(bytes: Uint8Array, file: ReturnType<typeof stateDictEntries>): void {
  for (const entry of file.tensors.values()) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    assert.is(entry.bytes.byteLength, count * DTYPE_SIZES[entry.dtype], `${entry.name}: bytes match dtype and shape`);
    if (entry.bytes.buffer === bytes.buffer) {
      assert.ok(entry.bytes.byteOffset + entry.bytes.byteLength <= bytes.byteOffset + bytes.byteLength, 'a view inside the file');
    }
    assert.is(toFloat32(entry).length, count);
  }
}

s('fuzz: every mutation of a pickle or a zip is refused cleanly or loads consistently', async () => {
  const env = (globalThis as { process?: { env?: Record<string, string> } }).process?.env ?? {};
  const seed = Number(env.TORCH_FUZZ_SEED ?? 20250101);
  const cases = 3000;
  const random = mulberry32(seed);
  const { tensors, storages } = sample();
  const pickle = statePickle(tensors, storages);
  const storageEntries = Object.fromEntries(Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v.bytes]));
  const legacy = torchSaveLegacy(tensors, storages);
  const stored = await torchSaveZip(tensors, storages);
  const outcomes: Record<string, number> = {};
  const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
  for (let i = 0; i < cases; i++) {
    const target = pick(random, ['pickle', 'pickle', 'zip bytes', 'legacy bytes'] as const);
    let bytes: Uint8Array;
    const applied: string[] = [];
    if (target === 'pickle') {
      let p = pickle;
      for (let m = 0, rounds = 1 + Math.floor(random() * 3); m < rounds; m++) {
        const kind = pick(random, Object.keys(PICKLE_MUTATIONS));
        applied.push(kind);
        p = PICKLE_MUTATIONS[kind](p, random);
      }
      bytes = await zip({ 'archive/data.pkl': p, ...storageEntries });
    } else {
      const base = target === 'zip bytes' ? stored : legacy;
      const kind = pick(random, ['byte flip', 'byte flip', 'truncation'] as const);
      applied.push(kind);
      bytes = PICKLE_MUTATIONS[kind](base, random);
    }
    let file;
    try {
      file = stateDictEntries(parseTorchFile(bytes).value);
    } catch (error) {
      if (!(error instanceof TorchFileError)) {
        throw new Error(`seed ${seed}, case ${i} (${target}: ${applied.join(' + ')}): ${(error as Error).stack}`);
      }
      count(`rejected: ${error.message.replace(/'[^']*'|\d+/g, '…').slice(0, 70)}`);
      continue;
    }
    checkLoaded(bytes, file);
    count(`loaded (${target})`);
  }
  const summary = Object.entries(outcomes).sort((a, b) => b[1] - a[1]);
  console.log(`    fuzz seed ${seed} (set TORCH_FUZZ_SEED to vary), ${cases} cases, ${summary.length} outcomes; the most common:`);
  for (const [outcome, n] of summary.slice(0, 14)) console.log(`      ${String(n).padStart(5)}  ${outcome}`);
  const loaded = summary.filter(([k]) => k.startsWith('loaded')).reduce((a, [, n]) => a + n, 0);
  assert.ok(loaded > 100, `some mutations still load (${loaded})`);
  assert.ok(summary.filter(([k]) => k.startsWith('rejected')).length > 20, 'many distinct rejections');
});

s.run();
