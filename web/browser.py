"""Headless Chromium for the web page's tests and benchmarks: launch options and a fake camera.

Debian's chromium (apt-get install chromium) driven by Playwright for Python; Playwright's own
browser downloads are never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("FLOWERBOT_CHROMIUM", "/usr/bin/chromium")
# No sandbox (root in CI), no GPU, and nothing that phones home during a test.
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_options(fake_camera: Path | None = None, gpu: bool = False) -> dict:
    """Keyword arguments for playwright's chromium.launch(); a fake camera plays `fake_camera`.

    gpu=True leaves out --disable-gpu and lets WebGL run on SwiftShader, the software renderer.
    """
    args = [a for a in BASE_ARGS if not (gpu and a == "--disable-gpu")]
    if gpu:
        args += ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
    if fake_camera:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera}",
        ]
    return {"executable_path": CHROMIUM, "headless": True, "args": args}


def camera_frame(photo: Path, width: int = 640, height: int = 480) -> Image.Image:
    """A landscape camera frame with the photo's centre square filling its centre square."""
    image = Image.open(photo).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    box = (left, top, left + side, top + side)
    square = image.resize((height, height), Image.Resampling.LANCZOS, box)
    frame = Image.new("RGB", (width, height), (128, 128, 128))
    frame.paste(square, ((width - height) // 2, 0))
    return frame


def write_y4m(frame: Image.Image, path: Path, fps: int = 30) -> Path:
    """One frame as a Y4M file (4:2:0, BT.601 video range) that Chromium's fake camera loops."""
    rgb = np.asarray(frame, dtype=np.float64)
    if frame.width % 2 or frame.height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    # BT.601 studio swing: the range Chromium assumes for camera frames.
    matrix = np.array(
        [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
    )
    ycc = rgb / 255.0 @ matrix.T + np.array([16.0, 128.0, 128.0])
    luma = ycc[..., 0]
    # 4:2:0: one chroma sample per 2x2 block, their mean.
    chroma = ycc[..., 1:].reshape(frame.height // 2, 2, frame.width // 2, 2, 2).mean(axis=(1, 3))
    planes = [luma, chroma[..., 0], chroma[..., 1]]
    header = f"YUV4MPEG2 W{frame.width} H{frame.height} F{fps}:1 Ip A1:1 C420jpeg\n"
    with path.open("wb") as f:
        f.write(header.encode("ascii"))
        f.write(b"FRAME\n")
        for plane in planes:
            f.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return path
