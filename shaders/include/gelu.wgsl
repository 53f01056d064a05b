// torch's exact gelu, 0.5 x (1 + erf(x / sqrt 2)). WGSL has no erf: Eigen's f32 rational
// approximation on [-4, 4] (erf is +-1 in f32 beyond), odd numerator over even denominator in
// x^2, to within a few f32 ulps.

fn erf(v: f32) -> f32 {
  let x = clamp(v, -4.0, 4.0);
  let x2 = x * x;
  var p = fma(x2, -2.72614225801306e-10, 2.77068142495902e-08);
  p = fma(x2, p, -2.10102402082508e-06);
  p = fma(x2, p, -5.69250639462346e-05);
  p = fma(x2, p, -7.34990630326855e-04);
  p = fma(x2, p, -2.95459980854025e-03);
  p = fma(x2, p, -1.60960333262415e-02);
  var q = fma(x2, -1.45660718464996e-05, -2.13374055278905e-04);
  q = fma(x2, q, -1.68282697438203e-03);
  q = fma(x2, q, -7.37332916720468e-03);
  q = fma(x2, q, -1.42647390514189e-02);
  return x * p / q;
}

fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
}
