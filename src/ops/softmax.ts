import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';

/** Softmax along the last dimension of `scores`, in place: rows of `length` values. */
export function softmaxRows(g: Graph, name: string, scores: Tensor): void {
  const length = scores.shape[scores.shape.length - 1];
  const rows = byteSize(scores) / 4 / length;
  g.addNode({
    name,
    kind: 'softmax',
    shader: 'softmax',
    inputs: [],
    outputs: [scores],
    params: { rows, length },
    // One invocation per row.
    dispatch: { invocations: [rows], flat: true },
    flops: rows * length * 6,
    bytes: 3 * byteSize(scores),
  });
}
