import { byteSize, bytesPerElement, type Graph, type Tensor } from '../graph/graph.ts';
import { lazyWeight, type WeightArray } from './weights.ts';

/**
 * WebGPU's default maxStorageBufferBindingSize, which every device allows: a token table larger
 * than this (SD 1.5's in f32) is bound in parts of at most this size, on every device alike.
 */
export const GUARANTEED_BINDING_BYTES = 134_217_728;
/** token_embedding.wgsl's token_table0 .. token_table3. */
const TABLE_PARTS = 4;

/**
 * A transformer's input embedding: ids [batch, L] (i32) -> tokenTable[id] + positionTable[position]
 * [batch, L, dim], positions 0 .. L-1 (token_embedding.wgsl). The caller refuses ids outside the
 * table (the shader clamps them). `partBytes`: the most bytes of the table one binding holds.
 */
export function tokenEmbedding(
  g: Graph,
  name: string,
  ids: Tensor,
  tokenTable: WeightArray,
  positionTable: WeightArray,
  options: { partBytes?: number } = {},
): Tensor {
  if (ids.dtype !== 'i32' || ids.shape.length !== 2) {
    throw new Error(`${name}: ids must be i32 [batch, tokens], got ${ids.dtype} [${ids.shape}]`);
  }
  const [batch, length] = ids.shape;
  const [vocab, dim] = tokenTable.shape;
  const [positions, positionDim] = positionTable.shape;
  if (positionDim !== dim) throw new Error(`${name}: the position table has ${positionDim} features, the token table ${dim}`);
  if (length > positions) throw new Error(`${name}: ${length} tokens, but the position table has ${positions} positions`);
  const partBytes = options.partBytes ?? GUARANTEED_BINDING_BYTES;
  const partRows = Math.min(vocab, Math.floor(partBytes / (dim * bytesPerElement(g.weightType))));
  const parts = Math.ceil(vocab / partRows);
  if (partRows < 1 || parts > TABLE_PARTS) {
    throw new Error(`${name}: the token table [${vocab}, ${dim}] needs more than ${TABLE_PARTS} bindings of ${partBytes} bytes`);
  }
  const tables: (Tensor | null)[] = [];
  for (let part = 0; part < TABLE_PARTS; part++) {
    if (part >= parts) {
      tables.push(null);
      continue;
    }
    const start = part * partRows;
    const end = Math.min(vocab, start + partRows);
    const slice = parts === 1
      ? tokenTable
      : lazyWeight(`${tokenTable.name}[${start}:${end}]`, [end - start, dim], () => tokenTable.data.subarray(start * dim, end * dim));
    tables.push(g.weight(slice.name, slice.shape, () => slice.data, g.weightType));
  }
  const out = g.intermediate(name, [batch, length, dim]);
  g.addNode({
    name,
    kind: 'token_embedding',
    shader: 'token_embedding',
    inputs: [ids, ...tables, g.weight(positionTable.name, positionTable.shape, () => positionTable.data, g.weightType)],
    outputs: [out],
    params: { tokens: batch * length, length, dim, vocab, part_rows: partRows },
    dispatch: { invocations: [batch * length * dim], flat: true },
    flops: batch * length * dim,
    bytes: byteSize(ids) + 3 * byteSize(out),
  });
  return out;
}
