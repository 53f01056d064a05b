/**
 * ONNX files for the peer runtimes: where the benchmark's models are (`../shared/peers`), random
 * external data for the graph-only layouts, and a tiny model written here for the tests.
 *
 * The tiny model has the UNets' signature (x f32 [b, 3, s, s], t int64 [b] -> eps) but is two
 * 3x3 convolutions with a SiLU and the timestep added between them: enough to run every peer's
 * path (session, inputs, readback, the DDIM loop) in a second, not a model to compare speeds on.
 * It is written with a few lines of protobuf encoding, so no ONNX package is needed.
 */

/** A model for a peer: the ONNX graph and, for graph-only files, the external data to make up. */
export interface PeerModel {
  /** A label, e.g. 'emoji32.onnx'. */
  name: string;
  graph: Uint8Array;
  /** The file name the graph's initializers refer to, and its length in bytes; absent when the weights are inside. */
  externalData?: { path: string; bytes: number };
  /** Whether the weights are the engine model's own (then the two forwards must agree). */
  sameWeights: boolean;
}

/**
 * `bytes` of uniform float32 values in ±0.025 from a fixed seed: graph-only weights (speed does
 * not depend on the values; random bytes would hold NaNs).
 */
export function randomExternalData(bytes: number, seed = 1): Uint8Array {
  const out = new Uint8Array(bytes);
  let offset = 0;
  for (const chunk of randomExternalDataChunks(bytes, seed)) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * The same values as `randomExternalData`, `chunkBytes` at a time (the last chunk shorter), so a
 * file of gigabytes is written without holding it whole; each chunk is a fresh array.
 */
export function* randomExternalDataChunks(bytes: number, seed = 1, chunkBytes = 64 * 2 ** 20): Generator<Uint8Array> {
  if (bytes % 4 !== 0) throw new Error(`external data of ${bytes} bytes is not whole float32 values`);
  if (chunkBytes % 4 !== 0 || chunkBytes <= 0) throw new Error(`chunks of ${chunkBytes} bytes are not whole float32 values`);
  let s = seed >>> 0 || 1;
  for (let done = 0; done < bytes; done += chunkBytes) {
    const values = new Float32Array(Math.min(chunkBytes, bytes - done) / 4);
    for (let i = 0; i < values.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      values[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.05;
    }
    yield new Uint8Array(values.buffer);
  }
}

// --- protobuf, the little of it ONNX needs -------------------------------------------------------

class Writer {
  private parts: number[] = [];
  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      this.parts.push(v ? byte | 0x80 : byte);
    } while (v);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, value: number): this {
    return this.tag(field, 0).varint(value);
  }
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    for (const b of data) this.parts.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }
  float(field: number, value: number): this {
    this.tag(field, 5);
    for (const b of new Uint8Array(Float32Array.of(value).buffer)) this.parts.push(b);
    return this;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const FLOAT = 1;
const INT64 = 7;
type Attr = { name: string; ints?: number[]; int?: number; float?: number };

function node(g: Writer, op: string, inputs: string[], outputs: string[], attrs: Attr[] = []): void {
  g.message(1, (n) => {
    for (const i of inputs) n.string(1, i);
    for (const o of outputs) n.string(2, o);
    n.string(3, `${op}_${outputs[0]}`);
    n.string(4, op);
    for (const a of attrs) {
      n.message(5, (m) => {
        m.string(1, a.name);
        if (a.ints) {
          for (const v of a.ints) m.int(8, v);
          m.int(20, 7); // INTS
        } else if (a.float !== undefined) {
          m.float(2, a.float);
          m.int(20, 1); // FLOAT
        } else {
          m.int(3, a.int!);
          m.int(20, 2); // INT
        }
      });
    }
  });
}

function initializer(g: Writer, name: string, dims: number[], data: Float32Array | BigInt64Array): void {
  g.message(5, (t) => {
    for (const d of dims) t.int(1, d);
    t.int(2, data instanceof Float32Array ? FLOAT : INT64);
    t.string(8, name);
    t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  });
}

/** A graph input or output: element type and shape, 'batch' for a symbolic dimension. */
function valueInfo(g: Writer, field: number, name: string, elemType: number, dims: (number | string)[]): void {
  g.message(field, (v) => {
    v.string(1, name);
    v.message(2, (type) =>
      type.message(1, (tensor) => {
        tensor.int(1, elemType);
        tensor.message(2, (shape) => {
          for (const d of dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        });
      }));
  });
}

function randomFloats(n: number, scale: number, seed: number): Float32Array {
  return new Float32Array(randomExternalData(n * 4, seed).buffer).map((v) => v * (scale / 0.025));
}

/** The tiny test model as an ONNX file (opset 17), with a dynamic batch. */
export function tinyOnnxModel(options: { size?: number; channels?: number; seed?: number } = {}): Uint8Array {
  const size = options.size ?? 8;
  const c = options.channels ?? 8;
  const seed = options.seed ?? 3;
  const graph = new Writer();
  initializer(graph, 'w1', [c, 3, 3, 3], randomFloats(c * 27, 0.2, seed));
  initializer(graph, 'b1', [c], randomFloats(c, 0.1, seed + 1));
  initializer(graph, 'w2', [3, c, 3, 3], randomFloats(3 * c * 9, 0.2, seed + 2));
  initializer(graph, 'b2', [3], randomFloats(3, 0.1, seed + 3));
  initializer(graph, 'axes', [3], BigInt64Array.of(1n, 2n, 3n));
  initializer(graph, 'tscale', [1], Float32Array.of(1e-3));
  const conv = [{ name: 'pads', ints: [1, 1, 1, 1] }, { name: 'kernel_shape', ints: [3, 3] }];
  node(graph, 'Cast', ['t'], ['tf'], [{ name: 'to', int: FLOAT }]);
  node(graph, 'Unsqueeze', ['tf', 'axes'], ['t4']);
  node(graph, 'Mul', ['t4', 'tscale'], ['temb']);
  node(graph, 'Conv', ['x', 'w1', 'b1'], ['h1'], conv);
  node(graph, 'Add', ['h1', 'temb'], ['h2']);
  node(graph, 'Sigmoid', ['h2'], ['gate']);
  node(graph, 'Mul', ['h2', 'gate'], ['h3']);
  node(graph, 'Conv', ['h3', 'w2', 'b2'], ['eps'], conv);
  graph.string(2, 'tiny');
  valueInfo(graph, 11, 'x', FLOAT, ['batch', 3, size, size]);
  valueInfo(graph, 11, 't', INT64, ['batch']);
  valueInfo(graph, 12, 'eps', FLOAT, ['batch', 3, size, size]);
  const model = new Writer();
  model.int(1, 8); // ir_version
  model.string(2, 'ddim-webgpu tests');
  model.bytes(7, graph.finish());
  model.message(8, (opset) => opset.string(1, '').int(2, 17));
  return model.finish();
}
