// The register convs' weights as one storage buffer, [in_channels * kh * kw, oc_stride]: one
// tap's 8 output channels are two vec4s.
@group(0) @binding(2) var<storage, read> weight: array<vec4<weight_t>>;

fn load_weights(row: u32, oc8: u32) -> Pixel {
  let i = row * (params.oc_stride / 4u) + 2u * oc8;
  return Pixel(vec4<f32>(weight[i]), vec4<f32>(weight[i + 1u]));
}
