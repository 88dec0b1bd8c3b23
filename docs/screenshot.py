"""Draw docs/web-camera.png: the camera page on a phone-sized screen, pointed at a sunflower.

The shipped model is exported for the page into a temporary folder and served as `flowerbot web`
serves it; headless Chromium's fake camera plays a sample photo; once the live answer has
averaged a few frames the page is saved as a PNG. Needs `make web-setup` and Debian's chromium.

    KERAS_HOME=.cache/keras .venv/bin/python docs/screenshot.py [--out docs/web-camera.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from model_training import defaults
from web.browser import camera_frame, launch_options, write_y4m
from web.export import export_web
from web.server import serving

DOCS = Path(__file__).resolve().parent
SAMPLE = DOCS.parents[1] / "shared/samples/photos/image_05414.jpg"
PREDICTIONS = "+document.getElementById('species').dataset.predictions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=SAMPLE, help="what the fake camera shows")
    parser.add_argument("--out", type=Path, default=DOCS / "web-camera.png")
    parser.add_argument("--width", type=int, default=400, help="CSS pixels, a phone's width")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = export_web(defaults.SHIPPED_MODEL_DIR, Path(folder) / "model")
        video = write_y4m(camera_frame(args.photo), Path(folder) / "camera.y4m")
        with serving(model) as url, sync_playwright() as p:
            browser = p.chromium.launch(**launch_options(fake_camera=video))
            page = browser.new_page(viewport={"width": args.width, "height": 860})
            page.goto(url)
            page.wait_for_function(f"{PREDICTIONS} >= 8", timeout=180_000)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    # A palette keeps the file small; the page is flat colours and one photo.
    image = Image.open(args.out).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(args.out, Image.open(args.out).size, args.out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
