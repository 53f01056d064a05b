/**
 * Conversions between model space and pixels. The model sees images as float tensors in
 * [-1, 1] (pixel v ↦ v / 127.5 − 1), laid out NCHW with 3 channels; pixels here are 8-bit RGBA,
 * row-major, as `encodePng` and `decodePng` use them.
 */

/**
 * One image of an NCHW tensor as RGBA bytes: round(clamp((v + 1) / 2, 0, 1) · 255), opaque.
 * c = 1 gives grey, c = 3 colour, c = 4 takes alpha from the fourth channel. NaN becomes 0.
 */
export function tensorToRgba(x: Float32Array, n: number, c: number, h: number, w: number, index: number): Uint8Array {
  checkTensor(x, n, c, h, w);
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`image index ${index} is outside the batch of ${n}`);
  }
  const plane = h * w;
  const base = index * c * plane;
  const rgba = new Uint8Array(plane * 4);
  const channelOf = c === 1 ? [0, 0, 0] : [0, 1, 2];
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < 3; k++) rgba[4 * p + k] = toByte(x[base + channelOf[k] * plane + p]);
    rgba[4 * p + 3] = c === 4 ? toByte(x[base + 3 * plane + p]) : 255;
  }
  return rgba;
}

function toByte(v: number): number {
  const unit = (v + 1) / 2;
  if (!(unit > 0)) return 0; // NaN included
  return unit >= 1 ? 255 : Math.round(unit * 255);
}

export interface GridOptions {
  /** Images per row; default ceil(sqrt(n)). */
  columns?: number;
  /** White pixels between images and around the edge (before scaling); default 2. */
  padding?: number;
  /** Integer nearest-neighbour upscaling of the whole grid; default 1. */
  scale?: number;
}

/** All n images of an NCHW tensor side by side in a grid on white, as RGBA. */
export function gridRgba(
  x: Float32Array,
  n: number,
  c: number,
  h: number,
  w: number,
  options: GridOptions = {},
): { rgba: Uint8Array; width: number; height: number } {
  checkTensor(x, n, c, h, w);
  const columns = Math.min(options.columns ?? Math.ceil(Math.sqrt(n)), n);
  const padding = options.padding ?? 2;
  const scale = options.scale ?? 1;
  if (!Number.isInteger(columns) || columns < 1) throw new RangeError(`grid columns must be a positive integer, not ${options.columns}`);
  if (!Number.isInteger(padding) || padding < 0) throw new RangeError(`grid padding must be a non-negative integer, not ${padding}`);
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`grid scale must be a positive integer, not ${scale}`);
  const rows = Math.ceil(n / columns);
  const width = (columns * (w + padding) + padding) * scale;
  const height = (rows * (h + padding) + padding) * scale;
  const rgba = new Uint8Array(width * height * 4).fill(255);
  for (let i = 0; i < n; i++) {
    const image = tensorToRgba(x, n, c, h, w, i);
    const left = (padding + (i % columns) * (w + padding)) * scale;
    const top = (padding + Math.floor(i / columns) * (h + padding)) * scale;
    for (let y = 0; y < h * scale; y++) {
      const sourceRow = Math.floor(y / scale) * w;
      const targetRow = (top + y) * width + left;
      for (let xs = 0; xs < w * scale; xs++) {
        const from = 4 * (sourceRow + Math.floor(xs / scale));
        rgba.set(image.subarray(from, from + 4), 4 * (targetRow + xs));
      }
    }
  }
  return { rgba, width, height };
}

/**
 * An RGBA image as a [3, H, W] model-space tensor (v / 127.5 − 1), alpha composited over a grey
 * level `alphaBackground` (default white, the background the training emoji were centred on).
 */
export function rgbaToTensor(rgba: Uint8Array, width: number, height: number, alphaBackground = 255): Float32Array {
  const plane = width * height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || rgba.length !== plane * 4) {
    throw new RangeError(`${rgba.length} bytes are not a ${width}x${height} RGBA image`);
  }
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    const alpha = rgba[4 * p + 3];
    for (let k = 0; k < 3; k++) {
      const v = alpha === 255 ? rgba[4 * p + k] : (rgba[4 * p + k] * alpha + alphaBackground * (255 - alpha)) / 255;
      out[k * plane + p] = v / 127.5 - 1;
    }
  }
  return out;
}

function checkTensor(x: Float32Array, n: number, c: number, h: number, w: number): void {
  for (const [label, size] of [['n', n], ['h', h], ['w', w]] as const) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`image tensor ${label} must be a positive integer, not ${size}`);
  }
  if (c !== 1 && c !== 3 && c !== 4) throw new RangeError(`images need 1, 3 or 4 channels, not ${c}`);
  if (x.length !== n * c * h * w) {
    throw new RangeError(`tensor of ${x.length} values is not [${n}, ${c}, ${h}, ${w}]`);
  }
}
