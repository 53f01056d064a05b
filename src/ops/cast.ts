import { byteSize, elementCount, type Graph, type Tensor } from '../graph/graph.ts';

/**
 * The conversions at the edges of an f16 graph: its f32 input as the graph's activations, and an
 * activation tensor back as f32 for whoever reads it (the sampler). A graph of f32 activations
 * (f32, f16-packed) needs neither: each returns its input there, with no node.
 */
export function toActivations(g: Graph, name: string, x: Tensor): Tensor {
  if (x.dtype === g.activationType) return x;
  if (x.dtype !== 'f32') throw new Error(`${name}: cannot convert ${x.dtype} to ${g.activationType}`);
  return cast(g, name, 'to_activations', x, g.intermediate(name, x.shape));
}

export function fromActivations(g: Graph, name: string, x: Tensor): Tensor {
  if (x.dtype === 'f32') return x;
  if (x.dtype !== g.activationType) throw new Error(`${name}: ${x.dtype} is not this graph's activation type`);
  return cast(g, name, 'from_activations', x, g.intermediate(name, x.shape, 'f32'));
}

function cast(g: Graph, name: string, shader: 'to_activations' | 'from_activations', x: Tensor, out: Tensor): Tensor {
  const count = elementCount(x.shape);
  g.addNode({
    name,
    kind: 'cast',
    shader,
    inputs: [x],
    outputs: [out],
    params: { count },
    dispatch: { invocations: [count], flat: true },
    flops: 0,
    bytes: byteSize(x) + byteSize(out),
  });
  return out;
}
