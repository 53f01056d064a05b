import type { Graph, Tensor } from '../graph/graph.ts';
import type { WeightArray } from './weights.ts';

/**
 * temb + the class embedding of each image. `table` is nn.Embedding's weight [classes, dim], read
 * at each image's label; or, for class_embed_type 'timestep', a tensor [batch, dim] already
 * holding each image's embedding (then the labels only fill the binding).
 */
export function addClassEmbedding(g: Graph, name: string, temb: Tensor, table: WeightArray | Tensor, labels: Tensor): Tensor {
  const [n, dim] = temb.shape;
  const lookup = 'data' in table;
  const tableTensor = lookup ? g.weight(table.name, table.shape, () => table.data) : table;
  const [rows, tableDim] = tableTensor.shape;
  if (tableDim !== dim) throw new Error(`${name}: the class embedding has ${tableDim} features, the time embedding ${dim}`);
  const out = g.intermediate(name, [n, dim]);
  g.addNode({
    name,
    kind: 'class_embedding',
    shader: 'class_embedding',
    inputs: [temb, tableTensor, labels],
    outputs: [out],
    params: { batch: n, dim, rows, lookup: lookup ? 1 : 0 },
    dispatch: { invocations: [dim, n] },
    flops: n * dim,
    bytes: 4 * (3 * n * dim + n),
  });
  return out;
}
