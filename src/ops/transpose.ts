import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';

/**
 * Every image's matrix transposed: [batch, rows, cols] -> [batch, cols, rows] (transpose.wgsl),
 * with `shape` the output's shape (of batch * rows * cols elements, batch first).
 */
function transposed(g: Graph, name: string, x: Tensor, rows: number, cols: number, shape: number[]): Tensor {
  const batch = x.shape[0];
  const out = g.intermediate(name, shape);
  g.addNode({
    name,
    kind: 'transpose',
    shader: 'transpose',
    inputs: [x],
    outputs: [out],
    params: { batch, rows, cols },
    dispatch: { invocations: [batch * rows * cols], flat: true },
    flops: 0,
    bytes: byteSize(x) + byteSize(out),
  });
  return out;
}

/** An NCHW feature map [N, C, H, W] as tokens [N, H * W, C] (torch's permute(0, 2, 3, 1).reshape). */
export function channelsToTokens(g: Graph, name: string, x: Tensor): Tensor {
  if (x.shape.length !== 4) throw new Error(`${name}: expected an NCHW tensor, got [${x.shape}]`);
  const [n, c, h, w] = x.shape;
  return transposed(g, name, x, c, h * w, [n, h * w, c]);
}

/** Tokens [N, H * W, C] back as an NCHW feature map [N, C, H, W] (reshape(N, H, W, C).permute(0, 3, 1, 2)). */
export function tokensToChannels(g: Graph, name: string, x: Tensor, height: number, width: number): Tensor {
  if (x.shape.length !== 3 || x.shape[1] !== height * width) {
    throw new Error(`${name}: expected [batch, ${height * width} tokens, channels], got [${x.shape}]`);
  }
  const [n, tokens, c] = x.shape;
  return transposed(g, name, x, tokens, c, [n, c, height, width]);
}
