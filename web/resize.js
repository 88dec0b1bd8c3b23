// Pillow's Lanczos resize (Image.resize with a box), ported so the page feeds the model the same
// pixels as Python's photos.load_photo. A canvas' smoothing, or pica's Lanczos on a cropped
// canvas, differ at the crop's edges (Pillow's filter reads source pixels just outside the box)
// and moved probabilities by up to 0.1 and 0.015; this matches Pillow to the pixel (web/README.md).
// Follows Pillow's src/libImaging/Resample.c: float coefficients rounded to 22-bit fixed point,
// a horizontal pass rounded to 8 bits, then a vertical pass.

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = ONE / 2;
const SUPPORT = 3;

function sinc(x) {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const lanczos = (x) => (x >= -SUPPORT && x < SUPPORT ? sinc(x) * sinc(x / SUPPORT) : 0);

// For each output pixel: the first source pixel, their count, and the fixed-point weights.
function coefficients(inSize, in0, in1, outSize) {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const taps = [];
  for (let out = 0; out < outSize; out += 1) {
    const centre = in0 + (out + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const count = Math.min(Math.trunc(centre + support + 0.5), inSize) - first;
    const weights = Array.from({ length: count }, (_, i) =>
      lanczos((i + first - centre + 0.5) / filterScale),
    );
    const total = weights.reduce((a, b) => a + b, 0);
    const fixed = weights.map((w) => {
      const v = (total === 0 ? w : w / total) * ONE;
      return Math.trunc(v < 0 ? v - 0.5 : v + 0.5);
    });
    taps.push({ first, weights: fixed });
  }
  return taps;
}

const clip8 = (sum) => (sum >= ONE * 256 ? 255 : sum <= 0 ? 0 : Math.floor(sum / ONE));

/**
 * RGBA pixels (width x height) -> RGB Float32Array (size x size x 3) of the box [left, top,
 * right, bottom] resized with Lanczos-3, values 0..255 exactly as Pillow rounds them.
 */
export function resizeLikePillow(rgba, width, height, box, size) {
  const [left, top, right, bottom] = box;
  const columns = coefficients(width, left, right, size);
  const rows = coefficients(height, top, bottom, size);
  const firstRow = rows[0].first;
  const lastRow = rows[size - 1].first + rows[size - 1].weights.length;
  // Horizontal pass over the source rows the vertical pass reads, rounded to 8 bits as Pillow does.
  const band = new Uint8Array((lastRow - firstRow) * size * 3);
  for (let y = firstRow; y < lastRow; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const { first, weights } = columns[x];
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0, at = (y * width + first) * 4; i < weights.length; i += 1, at += 4) {
        r += rgba[at] * weights[i];
        g += rgba[at + 1] * weights[i];
        b += rgba[at + 2] * weights[i];
      }
      const to = ((y - firstRow) * size + x) * 3;
      band[to] = clip8(r);
      band[to + 1] = clip8(g);
      band[to + 2] = clip8(b);
    }
  }
  const rgb = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y += 1) {
    const { first, weights } = rows[y];
    for (let x = 0; x < size; x += 1) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < weights.length; i += 1) {
        const at = ((first - firstRow + i) * size + x) * 3;
        r += band[at] * weights[i];
        g += band[at + 1] * weights[i];
        b += band[at + 2] * weights[i];
      }
      const to = (y * size + x) * 3;
      rgb[to] = clip8(r);
      rgb[to + 1] = clip8(g);
      rgb[to + 2] = clip8(b);
    }
  }
  return rgb;
}
