// Python's photos.load_photo in the browser, so the page feeds the model the same pixels:
// Pillow's JPEG draft decode and its Lanczos resize (docs/web.md has the measurements).

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

// For each output pixel: its first source pixel, its number of taps and their fixed-point
// weights, flat in typed arrays (a frame is resized 15 times a second: no objects per pixel).
function coefficients(inSize, in0, in1, outSize) {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * stride);
  for (let out = 0; out < outSize; out += 1) {
    const centre = in0 + (out + 0.5) * scale;
    first[out] = Math.max(Math.trunc(centre - support + 0.5), 0);
    count[out] = Math.min(Math.trunc(centre + support + 0.5), inSize) - first[out];
    const taps = Array.from({ length: count[out] }, (_, i) =>
      lanczos((i + first[out] - centre + 0.5) / filterScale),
    );
    const total = taps.reduce((a, b) => a + b, 0);
    taps.forEach((w, i) => {
      const v = (total === 0 ? w : w / total) * ONE;
      weights[out * stride + i] = Math.trunc(v < 0 ? v - 0.5 : v + 0.5);
    });
  }
  return { first, count, weights, stride, size: outSize };
}

// Pillow sums in 32-bit integers and shifts (Resample.c): `| 0` and `>>` keep the JIT on int32.
const clip8 = (sum) => (sum >= ONE * 256 ? 255 : sum <= 0 ? 0 : sum >> PRECISION_BITS);

// An image as Pillow's passes see it: `channels` bytes a pixel, of which the first three are RGB.
const rgbImage = (width, height) => ({ data: new Uint8Array(width * height * 3), width, height, channels: 3 });

// Resamples along x: output columns from `taps`, for the source rows from `rowFrom` to `rowTo`.
function horizontalPass(image, taps, rowFrom, rowTo) {
  const out = rgbImage(taps.size, rowTo - rowFrom);
  const { data, width, channels } = image;
  const { first, count, weights, stride } = taps;
  for (let y = rowFrom; y < rowTo; y += 1) {
    for (let x = 0; x < taps.size; x += 1) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      let at = (y * width + first[x]) * channels;
      for (let i = x * stride, end = i + count[x]; i < end; i += 1) {
        const w = weights[i];
        r = (r + data[at] * w) | 0;
        g = (g + data[at + 1] * w) | 0;
        b = (b + data[at + 2] * w) | 0;
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
  const out = rgbImage(image.width, taps.size);
  const { data, width, channels } = image;
  const { first, count, weights, stride } = taps;
  for (let y = 0; y < taps.size; y += 1) {
    for (let x = 0; x < width; x += 1) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      let at = ((first[y] - rowFrom) * width + x) * channels;
      for (let i = y * stride, end = i + count[y]; i < end; i += 1) {
        const w = weights[i];
        r = (r + data[at] * w) | 0;
        g = (g + data[at + 1] * w) | 0;
        b = (b + data[at + 2] * w) | 0;
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
    const rowFrom = rows.first[0];
    const rowTo = rows.first[size - 1] + rows.count[size - 1];
    resized = verticalPass(horizontalPass(source, columns, rowFrom, rowTo), rows, rowFrom);
  }
  return Float32Array.from(resized.data);
}
