"""How reliably the web page takes a new model version: rounds of "offline, then a new export
online", timing each reload until the page runs the new version.

    python bench/web_updates.py [--rounds 30] [--busy 3] [--timeout 60] [--export DIR]

Each round stops the server and reloads the page offline (it runs from the service worker's
precache), writes a new version into the exported model's metadata.json, serves it again on the
same origin and reloads: the new service worker installs, takes over and the page loads the new
model in place (docs/web.md, "A new model version"). A round that does not show the new version
within --timeout seconds is "stuck". --busy starts that many spinning processes for the run, so
the page competes for the CPU as it does during the test suite. --export takes a copy of an
exported model folder instead of exporting the shipped model. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from model_training.defaults import SHIPPED_MODEL_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "keras"))
# Run as `python bench/web_updates.py`, bench/ comes first on sys.path; the web/ package is meant.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from web.browser import launch_options
from web.export import export_web
from web.server import serving

READY = "document.body.dataset.offline === 'ready' && navigator.serviceWorker.controller"


def spin() -> None:
    while True:
        pass


def set_version(model: Path, version: str) -> None:
    metadata = json.loads((model / "metadata.json").read_text())
    metadata["version"] = version
    (model / "metadata.json").write_text(json.dumps(metadata))


def update_times(model: Path, rounds: int, timeout_s: float) -> list[float | None]:
    """Seconds from each online reload to the new version on screen; None where it was stuck."""
    times: list[float | None] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        context = browser.new_context()
        page = context.new_page()
        with serving(model) as url:
            page.goto(url)
            page.wait_for_function(READY, timeout=120_000)
        port = urlsplit(url).port  # one origin for every round: the service worker belongs to it
        for number in range(rounds):
            context.set_offline(True)
            page.reload()
            page.locator("#camera-note").filter(has_text="Choose a photo").wait_for(timeout=120_000)
            set_version(model, version := f"update-{number}")
            context.set_offline(False)
            with serving(model, port):
                start = time.perf_counter()
                page.reload()
                try:
                    page.wait_for_function(
                        f"document.body.dataset.modelVersion === '{version}'",
                        timeout=timeout_s * 1000,
                    )
                    times.append(time.perf_counter() - start)
                except PlaywrightTimeout:
                    times.append(None)
                    # The next round needs it active: ask the waiting worker as the page would
                    # (else Chromium's own limit is 5 minutes).
                    page.evaluate(
                        "navigator.serviceWorker.getRegistration()"
                        ".then(r => r.waiting?.postMessage({type: 'SKIP_WAITING'}))"
                    )
                    page.wait_for_function(
                        f"document.body.dataset.modelVersion === '{version}'", timeout=360_000
                    )
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--busy", type=int, default=3, help="spinning processes during the run")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before 'stuck'")
    parser.add_argument("--export", type=Path, help="an exported model folder (flowerbot export)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        if args.export:
            shutil.copytree(args.export, model)
        else:
            export_web(SHIPPED_MODEL_DIR, model)
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for spinner in spinners:
            spinner.start()
        try:
            times = update_times(model, args.rounds, args.timeout)
        finally:
            for spinner in spinners:
                spinner.terminate()
        load = os.getloadavg()[0]

    took = np.array([t for t in times if t is not None])
    stuck = len(times) - len(took)
    print(f"{args.rounds} updates, {args.busy} spinning processes, load average {load:.1f}\n")
    print("| updated | stuck (> timeout) | p50 s | p95 s | max s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    p50, p95, top = np.percentile(took, [50, 95, 100]) if len(took) else [np.nan] * 3
    print(f"| {len(took)} | {stuck} | {p50:.1f} | {p95:.1f} | {top:.1f} |")


if __name__ == "__main__":
    main()
