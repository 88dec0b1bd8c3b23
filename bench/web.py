"""The web page's cost in headless Chromium: model download size, time to first prediction and
time per camera frame for each TF.js backend and live mode; or its Lighthouse scores.

    python bench/web.py [--seconds 10] [--backends wasm,webgl,cpu] [--live all,cycle]
                        [--threads auto,2] [--weights none,float16,uint8]
    python bench/web.py --lighthouse [--runs 3] [--weights none,float16] [--telegram]

--lighthouse runs Lighthouse (web/node_modules, pinned in web/package.json) in its default mobile
emulation (simulated slow 4G, 4x CPU slowdown) on the page served as `flowerbot web` serves it,
with the project's Chromium, and prints the four category scores, first contentful paint and the
total bytes: the median run by performance score, per weights export. --telegram adds the page
opened as Telegram opens the bot's Mini App (launch parameters in the URL's fragment, with a light
and a dark theme of Telegram's; Telegram's script loaded; docs/web.md, "Inside Telegram").

A sample photo plays as a fake camera; the page runs as a visitor would see it (its own live loop:
frame -> Pillow-exact resize -> model -> top-5 and verdict on screen). Live modes: "all" runs the
model's 4 serving views on every frame (the page's only mode before; `?live=all`), "cycle" one view
a frame, view k mod 4 on frame k, averaged over the last 4 frames while the camera is steady (the
default). --threads sets the WASM backend's threads (`?threads=N`; "auto" is TF.js' choice, half
the cores), which needs the cross-origin isolation `flowerbot web` gives the page.
WebGL runs on SwiftShader, Chromium's software renderer, since the benchmark machine has no GPU.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from model_training.defaults import SHIPPED_MODEL_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras finds the ImageNet backbone weights here (`make setup` puts them there), from any shell.
os.environ.setdefault("KERAS_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "keras"))
# Run as `python bench/web.py`, bench/ comes first on sys.path and "web" would be this file, not
# the web/ package (installed with the project): look past it.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
from playwright.sync_api import sync_playwright

from web.browser import CHROMIUM, camera_frame, launch_options, write_y4m
from web.export import QUANTIZE_FLAGS, export_web, model_bytes
from web.server import WEB_ROOT, serving

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "photos"
PREDICTIONS = "+document.getElementById('species').dataset.predictions || 0"
LIVE_MODES = {"all": "4 views a frame", "cycle": "1 view a frame, averaged over 4"}
LIGHTHOUSE = WEB_ROOT / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
# Issue 10 measured these with Lighthouse 12 before TF.js left <head> (tf.min.js and the WASM
# backend loaded by blocking <script> tags).
BEFORE = {
    "performance": 0.56,
    "accessibility": 1.0,
    "best-practices": 1.0,
    "seo": 1.0,
    "fcp_ms": 9600,
    "bytes": 12.8e6,
}


def lighthouse(url: str, out: Path) -> dict[str, float]:
    """One Lighthouse run (default mobile emulation) -> the four scores, FCP, TBT, LCP, bytes."""
    subprocess.run(
        [
            str(LIGHTHOUSE),
            url,
            "--quiet",
            "--output=json",
            f"--output-path={out}",
            "--chrome-flags=--headless --no-sandbox",
        ],
        check=True,
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        timeout=600,
    )
    report = json.loads(out.read_text())
    if report.get("runtimeError"):
        raise RuntimeError(report["runtimeError"]["message"])
    audits = report["audits"]
    urls = [item["url"] for item in audits["network-requests"]["details"]["items"]]
    return {
        **{name: report["categories"][name]["score"] for name in CATEGORIES},
        "fcp_ms": audits["first-contentful-paint"]["numericValue"],
        "lcp_ms": audits["largest-contentful-paint"]["numericValue"],
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
        "bytes": audits["total-byte-weight"]["numericValue"],
        "version": report["lighthouseVersion"],
        # Whether tf.min.js and a weight shard were requested during the trace (by the page's
        # worker or the service worker's precache): the model's loading fell inside it.
        "model_loaded": any(url.endswith("tf.min.js") for url in urls)
        and any(url.endswith(".bin") for url in urls),
    }


# A light and a dark theme like Telegram's defaults (themeParams; #2481cc is its script's own
# fallback button colour), for --telegram.
TELEGRAM_THEMES = {
    "light": {
        "bg_color": "#ffffff",
        "text_color": "#000000",
        "hint_color": "#999999",
        "link_color": "#2481cc",
        "button_color": "#2481cc",
        "button_text_color": "#ffffff",
        "secondary_bg_color": "#efeff3",
    },
    "dark": {
        "bg_color": "#212d3b",
        "text_color": "#ffffff",
        "hint_color": "#7d8b99",
        "link_color": "#5eabe1",
        "button_color": "#50a8eb",
        "button_text_color": "#ffffff",
        "secondary_bg_color": "#151e27",
    },
}


def telegram_launch(url: str, theme: dict[str, str]) -> str:
    """The page's URL as Telegram opens the Mini App. The init data is unsigned: the page only
    sends it, and nothing is sent here."""
    init_data = urlencode({"user": json.dumps({"id": 1, "first_name": "Lighthouse"})})
    fields = {
        "tgWebAppData": f"{init_data}&auth_date={int(time.time())}&hash=0",
        "tgWebAppVersion": "8.0",
        "tgWebAppPlatform": "android",
        "tgWebAppThemeParams": json.dumps(theme),
    }
    return url + "#" + urlencode(fields, quote_via=quote)


def lighthouse_table(exported: dict[str, Path], runs: int, telegram: bool) -> None:
    rows = []
    layouts = {
        "page": None,
        **({f"Telegram, {k}": v for k, v in TELEGRAM_THEMES.items()} if telegram else {}),
    }
    for quantize, folder in exported.items():
        for layout, theme in layouts.items():
            with serving(folder) as url:
                page = url if theme is None else telegram_launch(url, theme)
                report = folder.parent / f"lighthouse-{quantize}.json"
                results = [lighthouse(page, report) for _ in range(runs)]
            results.sort(key=lambda r: r["performance"])
            label = quantize if theme is None else f"{quantize} ({layout})"
            rows.append((label, results[len(results) // 2], [r["performance"] for r in results]))
    print(f"\nLighthouse {rows[0][1]['version']}, mobile emulation, median of {runs} run(s)\n")
    columns = "performance | accessibility | best practices | SEO | FCP | TBT | bytes"
    print(f"| page | weights | {columns} | TF.js and weights requested |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    b = BEFORE
    print(
        f"| before (issue 10) | none | {b['performance']:.2f} | {b['accessibility']:.2f} "
        f"| {b['best-practices']:.2f} | {b['seo']:.2f} | {b['fcp_ms'] / 1000:.1f} s | "
        f"| {b['bytes'] / 1e6:.1f} MB | |"
    )
    for quantize, r, scores in rows:
        print(
            f"| now | {quantize} | {r['performance']:.2f} ({min(scores):.2f}-{max(scores):.2f}) "
            f"| {r['accessibility']:.2f} | {r['best-practices']:.2f} | {r['seo']:.2f} "
            f"| {r['fcp_ms'] / 1000:.1f} s | {r['tbt_ms']:,.0f} ms | {r['bytes'] / 1e6:.1f} MB "
            f"| {'yes' if r['model_loaded'] else 'no'} |"
        )


def measure(
    url: str, backend: str, live: str, threads: str, camera: Path, seconds: float
) -> dict[str, object]:
    """Time to the first prediction on screen, then predictions counted over `seconds`."""
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options(camera, gpu=backend == "webgl"))
        page = browser.new_page()
        query = f"?backend={backend}&live={live}"
        page.goto(url + query + (f"&threads={threads}" if threads != "auto" else ""))
        page.wait_for_function(
            f"{PREDICTIONS} >= 1 || document.body.dataset.mode === 'error'", timeout=300_000
        )
        if page.evaluate("document.body.dataset.mode") == "error":
            reason = page.locator("#status").text_content()
            browser.close()
            return {"backend": backend, "live": live, "error": reason}
        first_ms = page.evaluate("performance.getEntriesByName('first-prediction')[0].startTime")
        # Past warm-up, and the service worker's precache download (first visit) is over.
        page.wait_for_function(
            f"{PREDICTIONS} >= 3 && document.body.dataset.offline === 'ready'", timeout=300_000
        )
        start_count, started = page.evaluate(PREDICTIONS), time.perf_counter()
        time.sleep(seconds)
        count, elapsed = page.evaluate(PREDICTIONS) - start_count, time.perf_counter() - started
        backend = page.evaluate("document.body.dataset.backend")
        speed = page.locator("#speed")
        result = {
            "backend": backend,
            "live": live,
            "threads": int(page.evaluate("document.body.dataset.threads")),
            "isolated": page.evaluate("crossOriginIsolated"),
            "first_ms": first_ms,
            "per_second": count / elapsed,
            "frame_ms": float(speed.get_attribute("data-ms-per-frame")),
            **{
                f"{step}_{kind}": float(speed.get_attribute(f"data-{step}-ms-{kind}"))
                for step in ("model", "resize")
                for kind in ("fastest", "median")
            },
            "chromium": browser.version,
        }
        browser.close()
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backends", default="wasm,webgl,cpu")
    parser.add_argument("--live", default="all,cycle", help="live modes: all, cycle or both")
    parser.add_argument(
        "--threads", default="auto", help="WASM threads: auto (TF.js' choice) and/or counts"
    )
    parser.add_argument(
        "--weights", default=",".join(QUANTIZE_FLAGS), help="exports for the download table"
    )
    parser.add_argument("--lighthouse", action="store_true", help="Lighthouse scores only")
    parser.add_argument("--runs", type=int, default=3, help="Lighthouse runs per export")
    parser.add_argument("--telegram", action="store_true", help="Lighthouse inside Telegram too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        weights = ["none", *(q for q in args.weights.split(",") if q != "none")]
        exported = {q: export_web(args.model, Path(tmp) / q, q) for q in weights}
        if args.lighthouse:
            lighthouse_table(exported, args.runs, args.telegram)
            return 0
        camera = write_y4m(camera_frame(SAMPLE / "image_05429.jpg"), Path(tmp) / "camera.y4m")
        print("| weights | model download (model.json, shards, honesty.bin) |")
        print("|---|---:|")
        for quantize, folder in exported.items():
            print(f"| {quantize} | {model_bytes(folder):,} B |")
        with serving(exported["none"]) as url:
            results = [
                measure(url, backend, live, threads, camera, args.seconds)
                for backend in args.backends.split(",")
                for threads in (args.threads.split(",") if backend == "wasm" else ["auto"])
                for live in args.live.split(",")
            ]

    print(f"\n{os.cpu_count()} CPU cores, no GPU; full-precision weights; 640x480 fake camera\n")
    print(
        "| backend | live mode | first prediction | ms per frame | predictions/s "
        "| model ms (fastest, median) | resize ms (fastest, median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        mode = LIVE_MODES[r["live"]]
        if "error" in r:
            print(f"| {r['backend']} | {mode} | not available: {r['error']} | | | | |")
            continue
        threads = f" ({r['threads']} thread{'s' * (r['threads'] > 1)})" if r["threads"] else ""
        print(
            f"| {r['backend']}{threads} | {mode} | {r['first_ms'] / 1000:.1f} s "
            f"| {r['frame_ms']:.0f} | {r['per_second']:.1f} "
            f"| {r['model_fastest']:.0f}, {r['model_median']:.0f} "
            f"| {r['resize_fastest']:.1f}, {r['resize_median']:.1f} |"
        )
    chromium = next((r["chromium"] for r in results if "chromium" in r), "?")
    isolated = any(r.get("isolated") for r in results)
    print(f"\nChromium {chromium}, headless; cross-origin isolated: {isolated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
