"""Fixed crops of the 224x224 photo ("views"), the same in training, caching and serving.

Training sees every view of every photo (augmentation whose backbone features are computed once);
serving averages the head's probabilities over a few of them (test-time augmentation).

This module is numpy only: serving builds its views here (`view_images`), training in
TensorFlow (model_training/model.py, ViewStack); both sample the same points the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np

Array = TypeVar("Array")


class View(NamedTuple):
    """A square crop of `fraction` of the side, at (top, left) in [0, 1] of the free margin."""

    fraction: float
    top: float
    left: float
    flip: bool


_POSITIONS = {
    "centre": (0.5, 0.5),
    "topleft": (0.0, 0.0),
    "topright": (0.0, 1.0),
    "bottomleft": (1.0, 0.0),
    "bottomright": (1.0, 1.0),
}


def _with_flips(name: str, fraction: float, top: float, left: float) -> dict[str, View]:
    return {name: View(fraction, top, left, False), f"{name}-flip": View(fraction, top, left, True)}


# 24 views: the whole photo, 80% and 90% crops at the centre and the corners, a 65% centre crop,
# each also mirrored. Measured on val: more views in training lift top-1 and top-5 by about
# two points over the whole photo alone; smaller crops than 65% cut off too much flower.
VIEWS: dict[str, View] = {
    **_with_flips("full", 1.0, 0.5, 0.5),
    **{
        k: v
        for percent in (80, 90)
        for pos, (top, left) in _POSITIONS.items()
        for k, v in _with_flips(f"{pos}{percent}", percent / 100, top, left).items()
    },
    **_with_flips("centre65", 0.65, 0.5, 0.5),
}
TRAIN_VIEWS: tuple[str, ...] = tuple(VIEWS)


def box(view: View) -> list[float]:
    """Normalised [y1, x1, y2, x2] box, as tf.image.crop_and_resize takes it."""
    margin = 1.0 - view.fraction
    y1, x1 = margin * view.top, margin * view.left
    return [y1, x1, y1 + view.fraction, x1 + view.fraction]


class Axis(NamedTuple):
    """Bilinear sampling along an axis: output i = lerp(input[lo[i]], input[hi[i]], weight[i]),
    times inside[i]."""

    lo: np.ndarray
    hi: np.ndarray
    weight: np.ndarray  # float32
    # 0 where the point falls a rounding error past the image: crop_and_resize writes 0 there
    # (the last column of the right 80% crops), and the cached features were computed so.
    inside: np.ndarray


def sampling(start: float, end: float, size: int) -> Axis:
    """The points tf.image.crop_and_resize samples between normalised `start` and `end` of an
    axis of `size` pixels into `size` outputs, computed as it computes them (float32)."""
    start32, end32 = np.float32(start), np.float32(end)
    last = np.float32(size - 1)
    step = (end32 - start32) * last / last
    points = start32 * last + np.arange(size, dtype=np.float32) * step
    lo = np.floor(points)
    inside = ((points >= 0) & (points <= last)).astype(np.float32)
    index = lo.astype(np.int64)
    return Axis(
        np.clip(index, 0, size - 1),
        np.clip(np.ceil(points).astype(np.int64), 0, size - 1),
        points - lo,
        inside,
    )


def crop(pixels: Array, view: View, take: Callable[..., Array] = np.take) -> Array:
    """(batch, size, size, 3) float32 pixels -> that view of each. `take` is np.take (serving)
    or tf.gather (training, model_training.model.ViewStack): the same gathers, lerps (x first,
    then y, in crop_and_resize's order) and mirroring either way. The whole view is the image
    itself; a flip reverses columns."""
    if view.fraction != 1.0:
        size = pixels.shape[1]
        y1, x1, y2, x2 = box(view)
        ys, xs = sampling(y1, y2, size), sampling(x1, x2, size)
        top, bottom = (
            lerp(take(rows, xs.lo, axis=2), take(rows, xs.hi, axis=2), xs.weight[:, None])
            for rows in (take(pixels, ys.lo, axis=1), take(pixels, ys.hi, axis=1))
        )
        pixels = lerp(top, bottom, ys.weight[:, None, None])
        if not (ys.inside.all() and xs.inside.all()):
            pixels = pixels * (ys.inside[:, None, None] * xs.inside[:, None])
    return pixels[:, :, ::-1] if view.flip else pixels


def view_images(images: np.ndarray, views: tuple[str, ...]) -> np.ndarray:
    """(batch, size, size, 3) uint8 -> (batch * n_views, size, size, 3) float32 in 0..255: the
    views of each image in a row, as ViewStack builds them in training."""
    pixels = images.astype(np.float32)
    # A view and its mirror share one crop (crop() mirrors after cropping): the serving views
    # centre80 and centre80-flip resample once (the views of one photo: 11 -> 8-11 ms, timeit).
    crops: dict[View, np.ndarray] = {}
    for name in views:
        unmirrored = VIEWS[name]._replace(flip=False)
        if unmirrored not in crops:
            crops[unmirrored] = crop(pixels, unmirrored)
    stacked = np.stack(
        [
            crops[VIEWS[name]._replace(flip=False)][:, :, ::-1]
            if VIEWS[name].flip
            else crops[VIEWS[name]]
            for name in views
        ],
        axis=1,
    )
    return stacked.reshape(-1, *images.shape[1:])


def lerp(a: Array, b: Array, weight: np.ndarray) -> Array:
    """a to b by weight, as crop_and_resize computes it (numpy arrays or TensorFlow tensors)."""
    return a + (b - a) * weight


def view_positions(views: tuple[str, ...], subset: tuple[str, ...]) -> list[int]:
    """Where each view of `subset` sits in `views`: picks serving views out of training features."""
    return [views.index(view) for view in subset]
