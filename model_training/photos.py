"""Photo bytes -> the 224x224 RGB image the model sees. The one place every caller decodes photos.

The training photos (Kaggle / Oxford TFRecords) are centre-cropped squares resized with Lanczos,
so a user's photo is brought to the same framing before it reaches the model.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # iPhone photos (HEIC) decode when pillow-heif is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional codec
    pass

INPUT_SIZE = 224
# A 50-megapixel photo is larger than any phone produces today; beyond that it is a bomb.
MAX_PIXELS = 50_000_000
MAX_BYTES = 50 * 1024 * 1024


class PhotoError(ValueError):
    """A photo that cannot be read; the message is short and safe to show to a user."""


@dataclass(frozen=True)
class Photo:
    """A decoded photo: the square the model sees, and the size it was sent at."""

    image: np.ndarray  # (size, size, 3) uint8
    width: int
    height: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def load_photo(data: bytes, size: int = INPUT_SIZE) -> np.ndarray:
    """Image bytes -> the (size, size, 3) uint8 square alone (for training data)."""
    return decode_photo(data, size).image


def decode_photo(data: bytes, size: int = INPUT_SIZE) -> Photo:
    """Decode image bytes: EXIF-upright, centre square, Lanczos to (size, size, 3) uint8."""
    if not data:
        raise PhotoError("the file is empty")
    if len(data) > MAX_BYTES:
        raise PhotoError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat it as an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise PhotoError("the image is too large (decompression bomb?)")
            # The size as sent, before the reduced-scale decode below shrinks it.
            width, height = image.size
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: a 12 MP photo then costs what a 1 MP does.
            image.draft("RGB", (size, size))
            image = ImageOps.exif_transpose(image)  # first frame of a GIF/WebP animation
            rgb = _to_rgb(image)
            square = rgb.resize(
                (size, size), Image.Resampling.LANCZOS, box=_centre_square(rgb), reducing_gap=3.0
            )
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise PhotoError("the image is too large (decompression bomb?)") from err
    except UnidentifiedImageError as err:
        raise PhotoError("this is not an image format I can read") from err
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise PhotoError("the image is damaged or truncated") from err
    return Photo(np.asarray(square, dtype=np.uint8), width, height)


def read_photo(path: str | Path, size: int = INPUT_SIZE) -> Photo:
    """Read and decode a photo file; a missing or unreadable path is a PhotoError too."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise PhotoError("no such file") from err
    except IsADirectoryError as err:
        raise PhotoError("this is a folder, not a photo") from err
    except OSError as err:
        raise PhotoError(f"cannot read the file ({err.strerror})") from err
    return decode_photo(data, size)


def _centre_square(image: Image.Image) -> tuple[int, int, int, int]:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return left, top, left + side, top + side


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any mode to RGB; transparent areas become white, as a viewer shows them."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
