"""The web page in headless Chromium: the same answers as Python, the camera, the photo fallback.

The browser tests need Debian's chromium, TF.js in web/node_modules and the TF.js converter
(`make web-setup`). Where one is missing they are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHIPPED_MODEL

from model_training.photos import load_photo
from web.browser import CHROMIUM, camera_frame, launch_options, write_y4m
from web.export import ExportError, export_web, find_converter, needs_export
from web.server import missing_vendor_files, serving

RESULTS = ROOT / "test-results"
TOLERANCE = 0.01  # largest difference allowed between the page's and Python's probabilities


def _missing_for_browser() -> list[str]:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    missing += [f"web/{name} (make web-setup)" for name in missing_vendor_files()]
    try:
        find_converter()
    except ExportError:
        missing.append("tensorflowjs_converter (make web-setup)")
    return missing


MISSING = _missing_for_browser()
needs_browser = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"), reason=f"missing: {', '.join(MISSING)}"
)


@pytest.fixture(scope="session")
def page_url(tmp_path_factory):
    """The page served on 127.0.0.1 with the shipped model, exported once for the session."""
    if MISSING:
        pytest.fail(f"the web page's tests need: {', '.join(MISSING)}")
    model = export_web(SHIPPED_MODEL, tmp_path_factory.mktemp("web") / "model")
    with serving(model) as url:
        yield url


def shown_top5(page) -> list[tuple[int, str, float]]:
    """The ranked list on screen: class index, the name shown, and the probability behind it."""
    return page.eval_on_selector_all(
        "#species li",
        "items => items.map(li => [+li.dataset.index, li.querySelector('.name').textContent,"
        " +li.dataset.probability])",
    )


@needs_browser
def test_chosen_photos_get_the_same_answers_as_python(page_url, classifier, sample_photos) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())  # no camera: the photo fallback
        page = browser.new_page(viewport={"width": 420, "height": 900})  # a phone's width
        page.goto(page_url)
        note = page.locator("#camera-note")
        note.filter(has_text="Choose a photo instead").wait_for(timeout=120_000)
        assert not page.get_by_role("button", name="Freeze").is_visible()
        page.context.set_offline(True)  # once loaded, the page needs no network
        for path, _, _ in sample_photos:
            page.set_input_files("#file", str(path))
            page.wait_for_function(
                f"document.getElementById('species').dataset.source === '{path.name}'",
                timeout=60_000,
            )
            shown = shown_top5(page)
            expected = classifier.identify(path.read_bytes()).top5
            assert shown[0][0] == expected[0].index, path.name
            assert shown[0][1] == expected[0].species
            np.testing.assert_allclose(
                [p for _, _, p in shown],
                [s.confidence for s in expected],
                atol=TOLERANCE,
                err_msg=path.name,
            )
        assert page.get_by_role("img").get_attribute("alt").endswith(sample_photos[-1][0].name)
        assert note.is_visible()  # still says why there is no live view
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=RESULTS / "web-photo.png", full_page=True)
        browser.close()


@needs_browser
def test_page_preprocesses_exactly_as_pillow(page_url, sample_photos) -> None:
    """The page's decode and resize of the centre square equal photos.load_photo to the pixel."""
    from playwright.sync_api import sync_playwright

    preprocess = """async (bytes) => {
        const { decodeLikePillow, resizeLikePillow } = await import('./pillow.js');
        const { image, width, height } = await decodeLikePillow(
            new Blob([new Uint8Array(bytes)]), 224);
        const canvas = new OffscreenCanvas(width, height);
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        const side = Math.min(width, height);
        const left = Math.floor((width - side) / 2), top = Math.floor((height - side) / 2);
        const rgba = context.getImageData(0, 0, width, height).data;
        return Array.from(resizeLikePillow(rgba, width, height,
                                           [left, top, left + side, top + side], 224));
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        page = browser.new_page()
        page.goto(page_url)
        # Wide, tall and square photos: Pillow's filter reads beyond the box's sides, top and
        # bottom, or nowhere; all are JPEGs decoded at half size (Image.draft).
        for path, _, _ in sample_photos:
            data = path.read_bytes()
            pixels = np.asarray(page.evaluate(preprocess, list(data)), dtype=np.float32)
            np.testing.assert_array_equal(pixels.reshape(224, 224, 3), load_photo(data), path.name)
        browser.close()


@needs_browser
def test_fake_camera_shows_the_species_live_and_freezes(page_url, sample_photos, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    photo, _, name = next(s for s in sample_photos if s[2] == "sunflower")
    video = write_y4m(camera_frame(photo), tmp_path / "camera.y4m")
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options(fake_camera=video))
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(page_url)
        predictions = "+document.getElementById('species').dataset.predictions"
        page.wait_for_function(f"{predictions} >= 3", timeout=120_000)  # it keeps updating
        assert page.evaluate("document.body.dataset.mode") == "live"
        assert page.locator("#species li .name").first.text_content() == name
        assert page.locator("#verdict").text_content().startswith(f"{name} (")

        freeze = page.get_by_role("button", name="Freeze")
        freeze.click()
        assert page.evaluate("document.body.dataset.mode") == "frozen"
        resume = page.get_by_role("button", name="Back to camera")
        assert resume.get_attribute("aria-pressed") == "true"
        time.sleep(1)  # the frozen frame's own prediction lands, then nothing more
        frozen_count = page.evaluate(predictions)
        time.sleep(1)
        assert page.evaluate(predictions) == frozen_count
        assert page.locator("#species li .name").first.text_content() == name

        resume.click()
        page.wait_for_function(f"{predictions} > {frozen_count}", timeout=30_000)
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=RESULTS / "web-camera.png")
        browser.close()


def test_server_serves_the_page_model_and_tfjs_only(tmp_path) -> None:
    (tmp_path / "model.json").write_text("{}")
    with serving(tmp_path) as url:
        with urllib.request.urlopen(url) as response:
            assert b"<title>Flowerbot" in response.read()
            # Cross-origin isolation: TF.js' WASM backend may use threads.
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(url + "model/model.json") as response:
            assert response.read() == b"{}"
        for hidden in ("node_modules/@tensorflow/tfjs/package.json", "model/../app.js", "model/"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + hidden)
            assert refused.value.code == 404, hidden


def test_export_is_needed_when_missing_or_older_than_the_artifact(tmp_path) -> None:
    artifact, out = tmp_path / "artifact", tmp_path / "web"
    artifact.mkdir()
    (artifact / "head.weights.h5").write_bytes(b"weights")
    assert needs_export(artifact, out)
    out.mkdir()
    (out / "model.json").write_text("{}")
    os.utime(artifact / "head.weights.h5", (1_000, 1_000))
    assert not needs_export(artifact, out)
    os.utime(artifact / "head.weights.h5", None)  # retrained just now
    os.utime(out / "model.json", (1_000, 1_000))
    assert needs_export(artifact, out)
