// Python's photos.load_photo in the browser, so the page feeds the model the same pixels:
// Pillow's JPEG draft decode and its Lanczos resize (web/README.md has the measurements).

/**
 * Decode a photo as Pillow does: EXIF orientation applied, no colour-profile conversion, and a
 * JPEG at least 2, 4 or 8 times `size` on both sides decoded at 1/2, 1/4 or 1/8 scale by
 * libjpeg's DCT scaling (Image.draft). WebCodecs' ImageDecoder asked for that size runs the same
 * scaled decode, to the pixel; where it is missing the full-size decode is the fallback.
 * Returns a drawable image (close() it after use) with its width and height.
 */
export async function decodeLikePillow(blob, size) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none" });
  const { width, height } = bitmap;
  const ratio = Math.min(Math.floor(width / size), Math.floor(height / size));
  const scale = [8, 4, 2].find((s) => ratio >= s);
  if (!scale || typeof ImageDecoder === "undefined" || !(await isJpeg(blob))) {
    return { image: bitmap, width, height };
  }
  bitmap.close();
  const decoder = new ImageDecoder({
    data: await blob.arrayBuffer(),
    type: "image/jpeg",
    desiredWidth: Math.ceil(width / scale),
    desiredHeight: Math.ceil(height / scale),
    colorSpaceConversion: "none",
  });
  const { image } = await decoder.decode();
  decoder.close();
  return { image, width: image.displayWidth, height: image.displayHeight };
}

async function isJpeg(blob) {
  const magic = new Uint8Array(await blob.slice(0, 3).arrayBuffer());
  return magic[0] === 0xff && magic[1] === 0xd8 && magic[2] === 0xff;
}

// Pillow's Lanczos resize (Image.resize with a box). A canvas' smoothing, or pica's Lanczos on a
// cropped canvas, differ at the crop's edges (Pillow's filter reads source pixels just outside
// the box) and moved probabilities by up to 0.1 and 0.015. Follows Pillow 13's
// src/libImaging/Resample.c: float coefficients rounded to 22-bit fixed point, and two passes,
// each rounded to 8 bits.

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

// For each output pixel: the first source pixel, and the fixed-point weights of it and the next.
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

// An image as Pillow's passes see it: `channels` bytes a pixel, of which the first three are RGB.
const rgbImage = (width, height) => ({ data: new Uint8Array(width * height * 3), width, height, channels: 3 });

// Resamples along x: output columns from `taps`, for the source rows from `rowFrom` to `rowTo`.
function horizontalPass(image, taps, rowFrom, rowTo) {
  const out = rgbImage(taps.length, rowTo - rowFrom);
  const { data, width, channels } = image;
  for (let y = rowFrom; y < rowTo; y += 1) {
    for (let x = 0; x < taps.length; x += 1) {
      const { first, weights } = taps[x];
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0, at = (y * width + first) * channels; i < weights.length; i += 1) {
        r += data[at] * weights[i];
        g += data[at + 1] * weights[i];
        b += data[at + 2] * weights[i];
        at += channels;
      }
      const to = ((y - rowFrom) * out.width + x) * 3;
      out.data[to] = clip8(r);
      out.data[to + 1] = clip8(g);
      out.data[to + 2] = clip8(b);
    }
  }
  return out;
}

// Resamples along y: output rows from `taps`, whose row numbers start at `rowFrom` of `image`.
function verticalPass(image, taps, rowFrom) {
  const out = rgbImage(image.width, taps.length);
  const { data, width, channels } = image;
  for (let y = 0; y < taps.length; y += 1) {
    const { first, weights } = taps[y];
    for (let x = 0; x < width; x += 1) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0, at = ((first - rowFrom) * width + x) * channels; i < weights.length; i += 1) {
        r += data[at] * weights[i];
        g += data[at + 1] * weights[i];
        b += data[at + 2] * weights[i];
        at += width * channels;
      }
      const to = (y * width + x) * 3;
      out.data[to] = clip8(r);
      out.data[to + 1] = clip8(g);
      out.data[to + 2] = clip8(b);
    }
  }
  return out;
}

/**
 * RGBA pixels (width x height) -> RGB Float32Array (size x size x 3) of the box [left, top,
 * right, bottom] resized with Lanczos-3, values 0..255 exactly as Pillow rounds them.
 */
export function resizeLikePillow(rgba, width, height, box, size) {
  const [left, top, right, bottom] = box;
  const columns = coefficients(width, left, right, size);
  const rows = coefficients(height, top, bottom, size);
  const source = { data: rgba, width, height, channels: 4 };
  let resized;
  // Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the
  // width; otherwise the horizontal pass first, over only the rows the vertical pass reads.
  if (height > size && height - size > (width - size) * 2) {
    resized = horizontalPass(verticalPass(source, rows, 0), columns, 0, size);
  } else {
    const rowFrom = rows[0].first;
    const rowTo = rows[size - 1].first + rows[size - 1].weights.length;
    resized = verticalPass(horizontalPass(source, columns, rowFrom, rowTo), rows, rowFrom);
  }
  return Float32Array.from(resized.data);
}
