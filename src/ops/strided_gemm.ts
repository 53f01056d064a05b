import type { Graph, Tensor } from '../graph/graph.ts';

/**
 * A strided view of a matrix per batch item z = outer * innerCount + inner: element (row, k) at
 * offset + outer * outer_ + inner * inner_ + row * rowStride + k * kStride (strided_gemm.wgsl).
 */
export interface MatrixView {
  tensor: Tensor;
  offset: number;
  outer: number;
  inner: number;
  row: number;
  k: number;
}

const BLOCK = 8;

/**
 * c[z](m, col) = alpha * sum_k a[z](m, k) * b[z](col, k) for z < outerCount * innerCount, writing
 * through the view `c` (whose `k` stride is the column stride) into `out`.
 */
export function stridedGemm(
  g: Graph,
  name: string,
  shape: { rows: number; cols: number; depth: number; outerCount: number; innerCount: number; alpha?: number },
  a: MatrixView,
  b: MatrixView,
  c: Omit<MatrixView, 'tensor'>,
  out: Tensor,
): void {
  const { rows, cols, depth, outerCount, innerCount } = shape;
  const items = outerCount * innerCount;
  const colBlocks = Math.ceil(cols / BLOCK);
  const cells = Math.ceil(rows / BLOCK) * colBlocks;
  g.addNode({
    name,
    kind: 'attention_gemm',
    shader: 'strided_gemm',
    inputs: [a.tensor, b.tensor],
    outputs: [out],
    params: {
      rows,
      cols,
      depth,
      inner_count: innerCount,
      items,
      col_blocks: colBlocks,
      alpha: shape.alpha ?? 1,
      a_offset: a.offset,
      a_outer: a.outer,
      a_inner: a.inner,
      a_row: a.row,
      a_k: a.k,
      b_offset: b.offset,
      b_outer: b.outer,
      b_inner: b.inner,
      b_row: b.row,
      b_k: b.k,
      c_offset: c.offset,
      c_outer: c.outer,
      c_inner: c.inner,
      c_row: c.row,
      c_col: c.k,
    },
    // One invocation per 8x8 block of c, for every batch item.
    dispatch: { invocations: [cells, items] },
    flops: 2 * items * rows * cols * depth,
    bytes: 4 * items * (rows * depth + cols * depth + rows * cols),
  });
}
