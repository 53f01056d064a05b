  // The fields every token attention kernel's Params starts with (pasted inside its struct): the
  // heads and lengths, where q, k and v lie in their tensors (row strides and column offsets:
  // token_attention.wgsl's header), the scale and the mask.
  heads: u32,
  head_dim: u32,
  query_length: u32,
  key_length: u32,
  q_stride: u32,
  q_offset: u32,
  k_stride: u32,
  k_offset: u32,
  v_stride: u32,
  v_offset: u32,
  scale: f32,  // 1 / sqrt(head_dim)
  causal: u32,
