/**
 * A cheap picture of Stable Diffusion latents, for watching a sample denoise without running the
 * VAE each step: each pixel's 4 latent channels times a fixed 4×3 matrix give its RGB, and the
 * result is upsampled bilinearly to the image's size.
 *
 * The matrix is ComfyUI's `latent_rgb_factors` for SD 1.x (comfy/latent_formats.py, class SD15),
 * a least-squares fit of decoded colours on the latents the UNet works in (the VAE's latents ×
 * scaling_factor). SD 2.x has the same VAE, so the same fit serves it. The colours are approximate
 * and the picture soft; it is a preview, never the decoded image.
 */

/** Rows: latent channels 0..3; columns: R, G, B (model space, [-1, 1]). */
export const SD_LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

export class LatentPreviewError extends Error {
  override name = 'LatentPreviewError';
}

/**
 * Latents [n, 4, h, w] → RGB images [n, 3, height, width] in model space ([-1, 1], not clamped):
 * the linear map above, then bilinear upsampling (half-pixel centres, edges clamped, as
 * torch.nn.functional.interpolate with align_corners=False).
 */
export function latentPreview(
  latents: Float32Array,
  n: number,
  latentShape: readonly [number, number, number],
  imageSize: readonly [number, number],
): Float32Array {
  const [c, h, w] = latentShape;
  const [height, width] = imageSize;
  if (c !== SD_LATENT_RGB_FACTORS.length) {
    throw new LatentPreviewError(`the latent preview maps ${SD_LATENT_RGB_FACTORS.length} latent channels to RGB, not ${c}`);
  }
  if (latents.length !== n * c * h * w) {
    throw new LatentPreviewError(`${latents.length} values are not ${n} latents of ${c}x${h}x${w}`);
  }
  if (!(height >= h && width >= w)) throw new LatentPreviewError(`a ${width}x${height} image is smaller than its ${w}x${h} latents`);
  const plane = h * w;
  const small = new Float32Array(3 * plane);
  const out = new Float32Array(n * 3 * height * width);
  // Each output row and column reads two source rows/columns with these weights.
  const rows = bilinearTaps(h, height);
  const columns = bilinearTaps(w, width);
  for (let i = 0; i < n; i++) {
    const latent = latents.subarray(i * c * plane, (i + 1) * c * plane);
    small.fill(0);
    for (let k = 0; k < c; k++) {
      const factors = SD_LATENT_RGB_FACTORS[k];
      for (let rgb = 0; rgb < 3; rgb++) {
        const factor = factors[rgb];
        for (let p = 0; p < plane; p++) small[rgb * plane + p] += factor * latent[k * plane + p];
      }
    }
    for (let rgb = 0; rgb < 3; rgb++) {
      const source = small.subarray(rgb * plane, (rgb + 1) * plane);
      const target = out.subarray((i * 3 + rgb) * height * width, (i * 3 + rgb + 1) * height * width);
      for (let y = 0; y < height; y++) {
        const top = rows.low[y] * w;
        const bottom = rows.high[y] * w;
        const fy = rows.fraction[y];
        for (let x = 0; x < width; x++) {
          const left = columns.low[x];
          const right = columns.high[x];
          const fx = columns.fraction[x];
          const upper = source[top + left] + fx * (source[top + right] - source[top + left]);
          const lower = source[bottom + left] + fx * (source[bottom + right] - source[bottom + left]);
          target[y * width + x] = upper + fy * (lower - upper);
        }
      }
    }
  }
  return out;
}

/** For each of `size` output positions, the two source positions of `from` it lies between and how far. */
function bilinearTaps(from: number, size: number): { low: Int32Array; high: Int32Array; fraction: Float32Array } {
  const low = new Int32Array(size);
  const high = new Int32Array(size);
  const fraction = new Float32Array(size);
  const scale = from / size;
  for (let o = 0; o < size; o++) {
    const at = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), from - 1);
    low[o] = Math.floor(at);
    high[o] = Math.min(low[o] + 1, from - 1);
    fraction[o] = at - low[o];
  }
  return { low, high, fraction };
}
