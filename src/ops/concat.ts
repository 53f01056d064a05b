import { byteSize, type Graph, type Tensor } from '../graph/graph.ts';

/** Channel concatenation of two NCHW tensors. */
export function concatChannels(g: Graph, name: string, a: Tensor, b: Tensor): Tensor {
  const [n, ca, h, w] = a.shape;
  const [nb, cb, hb, wb] = b.shape;
  if (n !== nb || h !== hb || w !== wb) throw new Error(`${name}: cannot concatenate [${a.shape}] and [${b.shape}]`);
  const out = g.intermediate(name, [n, ca + cb, h, w]);
  g.addNode({
    name,
    kind: 'concat',
    shader: 'concat',
    inputs: [a, b],
    outputs: [out],
    params: { batch: n, channels_a: ca, channels_b: cb, spatial: h * w },
    // One invocation per output value.
    dispatch: { invocations: [n * (ca + cb) * h * w], flat: true },
    flops: 0,
    bytes: 2 * byteSize(out),
  });
  return out;
}
