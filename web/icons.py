"""The page's home-screen icons, drawn with Pillow: a white flower on the page's accent green.

    python -m web.icons        # rewrites web/icons/*.png (committed; run after changing this)

Full-bleed squares, so the same drawing serves as a "maskable" icon: the flower stays inside the
central 80 % circle that Android's masks keep.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent / "icons"
ACCENT = (29, 107, 58)  # --accent in style.css
PETAL = (255, 255, 255)
HEART = (224, 168, 0)  # the favicon's yellow
# file name -> side in pixels: Android's 192 and 512 (manifest), iOS' 180 (apple-touch-icon).
SIZES = {"icon-192.png": 192, "icon-512.png": 512, "apple-touch-icon.png": 180}


def draw_icon(side: int) -> Image.Image:
    """Drawn 4x larger and reduced with Lanczos, for smooth edges."""
    big = side * 4
    image = Image.new("RGB", (big, big), ACCENT)
    draw = ImageDraw.Draw(image)
    centre = big / 2
    reach, petal = big * 0.22, big * 0.13  # petal centres' distance, petal radius
    for k in range(8):
        angle = 2 * math.pi * k / 8
        x, y = centre + reach * math.cos(angle), centre + reach * math.sin(angle)
        draw.ellipse((x - petal, y - petal, x + petal, y + petal), fill=PETAL)
    heart = big * 0.12
    draw.ellipse((centre - heart, centre - heart, centre + heart, centre + heart), fill=HEART)
    return image.resize((side, side), Image.Resampling.LANCZOS)


def write_icons(folder: Path = ICONS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, side in SIZES.items():
        draw_icon(side).save(folder / name, optimize=True)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_icons():
        print(path)
