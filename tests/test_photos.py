"""bytes -> image: every common format, EXIF orientation, and clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from model_training.photos import (
    INPUT_SIZE,
    Photo,
    PhotoError,
    decode_photo,
    load_photo,
    read_photo,
)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def half_red_half_blue(width: int = 400, height: int = 300) -> Image.Image:
    """Left half red, right half blue: orientation mistakes show up as swapped colours."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_common_formats_decode_to_224_rgb(fmt: str) -> None:
    image = load_photo(encode(half_red_half_blue(), fmt))
    assert image.shape == (INPUT_SIZE, INPUT_SIZE, 3) and image.dtype == np.uint8
    assert image[112, 10, 0] > 200 and image[112, 10, 2] < 60  # left stays red
    assert image[112, 213, 2] > 200 and image[112, 213, 0] < 60  # right stays blue


def test_iphone_heic_decodes() -> None:
    """iPhones send HEIC when a photo goes as a file; pillow-heif reads (and here writes) it."""
    data = encode(half_red_half_blue(), "HEIF")
    assert data[4:12] == b"ftypheic"
    image = load_photo(data)
    assert image[112, 10, 0] > 200 and image[112, 10, 2] < 60
    assert image[112, 213, 2] > 200 and image[112, 213, 0] < 60


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = Image.fromarray(np.full((50, 80), 90, np.uint8), mode="L")
    image = load_photo(encode(gray, "PNG"))
    assert image.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert np.all(image == 90)


def test_transparency_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (64, 64), (0, 128, 0, 0))
    image = load_photo(encode(rgba, "PNG"))
    assert np.all(image == 255)


def test_gif_animation_uses_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    image = load_photo(buffer.getvalue())
    assert image[0, 0, 0] > 200 and image[0, 0, 1] < 60


def test_exif_orientation_is_applied() -> None:
    """A landscape photo stored with 'rotate 90' must come out as the camera saw it."""
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer rotates 90 degrees clockwise
    stored = half_red_half_blue(400, 400)  # after rotation red is on top, blue at the bottom
    image = load_photo(encode(stored, "JPEG", exif=exif.tobytes()))
    assert image[10, 112, 0] > 200 and image[10, 112, 2] < 60
    assert image[213, 112, 2] > 200 and image[213, 112, 0] < 60


def test_wide_photo_is_centre_cropped_not_squashed() -> None:
    pixels = np.zeros((100, 300, 3), np.uint8)
    pixels[:, 100:200] = 255  # a white centre square between black sides
    image = load_photo(encode(Image.fromarray(pixels), "PNG"))
    assert image.mean() > 250


def test_large_photo_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 12 MP JPEG is decoded at 1/8 scale (JPEG's draft mode), not in full and then shrunk."""
    drafts: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = []
    real_draft = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        before = self.size
        result = real_draft(self, mode, size)
        drafts.append((size, before, self.size))  # requested, before, after the real draft
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    photo = decode_photo(encode(half_red_half_blue(4000, 3000), "JPEG", quality=85))
    assert len(drafts) == 1
    requested, before, after = drafts[0]
    assert requested is not None and all(INPUT_SIZE <= side <= 2 * INPUT_SIZE for side in requested)
    assert before == (4000, 3000)
    # Decoded at most half as wide and high; still no smaller than the square the model sees.
    assert after[0] <= before[0] // 2 and after[1] <= before[1] // 2
    assert min(after) >= INPUT_SIZE
    assert (photo.width, photo.height) == (4000, 3000)  # the size as sent, not as decoded
    assert photo.image.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert photo.image[112, 10, 0] > 200 and photo.image[112, 10, 2] < 60
    assert photo.image[112, 213, 2] > 200 and photo.image[112, 213, 0] < 60


def test_decode_photo_reports_the_size_as_sent() -> None:
    photo = decode_photo(encode(half_red_half_blue(300, 200), "PNG"))
    assert isinstance(photo, Photo)
    assert (photo.width, photo.height, photo.short_side) == (300, 200, 200)
    assert photo.image.shape == (INPUT_SIZE, INPUT_SIZE, 3) and photo.image.dtype == np.uint8
    np.testing.assert_array_equal(
        photo.image, load_photo(encode(half_red_half_blue(300, 200), "PNG"))
    )
    tall = decode_photo(encode(half_red_half_blue(120, 500), "JPEG"))
    assert (tall.width, tall.height, tall.short_side) == (120, 500, 120)


def test_exif_rotated_photo_keeps_its_short_side() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 400 x 150, shown 150 x 400
    photo = decode_photo(encode(half_red_half_blue(400, 150), "JPEG", exif=exif.tobytes()))
    assert {photo.width, photo.height} == {400, 150}
    assert photo.short_side == 150


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not a picture at all", "not an image"),
        (encode(half_red_half_blue(), "JPEG")[:300], "damaged or truncated"),
        (encode(half_red_half_blue(), "PNG")[:200], "damaged or truncated"),
    ],
)
def test_bad_bytes_raise_a_short_photo_error(data: bytes, message: str) -> None:
    with pytest.raises(PhotoError, match=message):
        load_photo(data)


def test_decompression_bomb_is_refused() -> None:
    # A 1-bit 20000 x 20000 PNG is tiny on disk but 400 megapixels once decoded.
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG", optimize=True)
    assert len(bomb) < 1_000_000
    with pytest.raises(PhotoError, match="too large"):
        load_photo(bomb)


def test_read_photo_reads_a_file_and_names_a_missing_one_or_a_folder(tmp_path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(encode(half_red_half_blue(300, 200), "PNG"))
    photo = read_photo(path)
    assert (photo.width, photo.height) == (300, 200)
    np.testing.assert_array_equal(photo.image, decode_photo(path.read_bytes()).image)
    with pytest.raises(PhotoError, match="no such file"):
        read_photo(tmp_path / "nope.jpg")
    with pytest.raises(PhotoError, match="folder"):
        read_photo(tmp_path)
