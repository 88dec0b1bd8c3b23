"""Accuracy of the web model's weight quantizations on the test split, run by TF.js in Chromium.

    python bench/web_quantization.py [--every 6]
                                     [--quantize none,float16,uint8]

Each quantization is exported, loaded by TF.js (WASM backend) in headless Chromium and fed the
same decoded test photos as Python's full-precision model, the reference. `--every N` takes every
Nth photo of the test split (a fixed subset; 1 = all 6,149). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
from pathlib import Path

from model_training.defaults import SHIPPED_MODEL_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Run as `python bench/web_quantization.py`, bench/ comes first on sys.path and "web" would be
# bench/web.py, not the web/ package: look past it.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
import numpy as np
from playwright.sync_api import sync_playwright

from model_training.classifier import FlowerClassifier
from model_training.data import read_split
from model_training.photos import load_photo
from web.browser import launch_options
from web.export import export_web, model_bytes
from web.server import serving

OXFORD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oxford102-224"
BATCH = 16
# The page runs TF.js in its Web Worker (web/worker.js); the benchmark loads its own copy into the
# page, the same files with the same WASM backend.
TFJS = (
    "node_modules/@tensorflow/tfjs/dist/tf.min.js",
    "node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
)
START_WASM = """async () => {
    tf.wasm.setWasmPaths(new URL('node_modules/@tensorflow/tfjs-backend-wasm/dist/',
                                 document.baseURI).href);
    await tf.setBackend('wasm');
    await tf.ready();
    return tf.getBackend();
}"""
PREDICT = """async ([pixels, n, size]) => {
    window.model ??= await tf.loadGraphModel('model/model.json');
    const bytes = Uint8Array.from(atob(pixels), (c) => c.charCodeAt(0));
    const input = tf.tensor4d(Float32Array.from(bytes), [n, size, size, 3]);
    const view = tf.tensor1d([0, 1, 2, 3], 'int32');  // every serving view, as Python
    const outputs = [window.model.predict({image: input, view})].flat();
    // The probabilities and the features: the probabilities have a column per class.
    const classes = (await (await fetch('model/classes.json')).json()).length;
    const output = outputs.find((o) => o.shape[1] === classes);
    const probabilities = Array.from(await output.data());
    tf.dispose([input, view, ...outputs]);
    return probabilities;
}"""


def browser_probabilities(model_dir: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities of TF.js running the exported model on (n, size, size, 3) uint8."""
    n, size = len(images), images.shape[1]
    rows = []
    with serving(model_dir) as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        page = browser.new_page()
        page.goto(url + "?backend=wasm")
        for script in TFJS:
            page.add_script_tag(url=script)
        assert page.evaluate(START_WASM) == "wasm"
        for start in range(0, n, BATCH):
            batch = images[start : start + BATCH]
            encoded = base64.b64encode(batch.tobytes()).decode("ascii")
            flat = page.evaluate(PREDICT, [encoded, len(batch), size])
            rows.append(np.reshape(flat, (len(batch), -1)))
        browser.close()
    return np.concatenate(rows)


def top_k_hits(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((best == labels[:, None]).any(axis=1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--every", type=int, default=6, help="every Nth test photo (1 = all)")
    parser.add_argument("--quantize", default="none,float16,uint8")
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(args.model)
    photos = read_split(OXFORD, "test", classifier.class_names)
    labels = photos.labels[:: args.every]
    images = np.stack([load_photo(data) for data in photos.encoded[:: args.every]])
    reference = np.concatenate(
        [classifier.probabilities(images[i : i + 64]) for i in range(0, len(images), 64)]
    )
    print(f"{len(images)} test photos (every {args.every}th of {len(photos)})\n")
    print("| weights | model.json + shards | top-1 | top-5 | top-1 as Python's | max abs Δp |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| Python (TensorFlow, float32) | | {top_k_hits(reference, labels, 1):.4f} "
        f"| {top_k_hits(reference, labels, 5):.4f} | | |"
    )
    for quantize in args.quantize.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = export_web(args.model, Path(tmp) / "model", quantize)
            probabilities = browser_probabilities(out, images)
            size = model_bytes(out)
        same = (probabilities.argmax(1) == reference.argmax(1)).mean()
        print(
            f"| TF.js, {quantize} | {size:,} B | {top_k_hits(probabilities, labels, 1):.4f} "
            f"| {top_k_hits(probabilities, labels, 5):.4f} | {same:.4f} "
            f"| {np.abs(probabilities - reference).max():.4f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
