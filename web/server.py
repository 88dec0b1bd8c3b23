"""A local static server for the web page: web/, the exported model, and TF.js from node_modules.

Only the TF.js and Workbox bundles the page loads are served out of node_modules, so the page's
files are all that a browser can read. /sw.js is web/sw.js with its precache manifest filled in
(`service_worker`). For development and tests on this machine: it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

WEB_ROOT = Path(__file__).resolve().parent
TFJS_DIST = "node_modules/@tensorflow/tfjs/dist/"
WASM_DIST = "node_modules/@tensorflow/tfjs-backend-wasm/dist/"
# Workbox for the service worker: workbox-sw loads the other three, and they need workbox-core.
WORKBOX_PACKAGES = ("workbox-sw", "workbox-core", "workbox-routing", "workbox-strategies")
WORKBOX_PACKAGES += ("workbox-precaching",)
# Telegram's Mini App script (telegram-web-app.js), as the npm package @twa-dev/sdk ships it: the
# page loads it only when Telegram opened it (telegram.js).
TELEGRAM_DIST = "node_modules/@twa-dev/sdk/dist/"
# What the page loads from npm packages: TF.js, the WASM backend with its .wasm files, Workbox.
VENDOR_PREFIXES = (
    f"/{TFJS_DIST}",
    f"/{WASM_DIST}",
    f"/{TELEGRAM_DIST}telegram-web-apps.js",
    *(f"/node_modules/{package}/build/" for package in WORKBOX_PACKAGES),
)
MODEL_PREFIX = "/model/"
# What the page POSTs to the bot (bot/webapp.py): the reverse proxy forwards it in production.
WEBAPP_PREFIX = "/webapp/"
SERVICE_WORKER = "sw.js"
# The files the page uses from those packages; `npm ci` in web/ installs them.
VENDOR_FILES = (
    f"{TFJS_DIST}tf.min.js",
    f"{WASM_DIST}tf-backend-wasm.min.js",
    # Which one loads depends on the browser: SIMD and threads, SIMD, or neither.
    f"{WASM_DIST}tfjs-backend-wasm-threaded-simd.wasm",
    f"{WASM_DIST}tfjs-backend-wasm-simd.wasm",
    f"{WASM_DIST}tfjs-backend-wasm.wasm",
    "node_modules/workbox-sw/build/workbox-sw.js",
    *(f"node_modules/{p}/build/{p}.prod.js" for p in WORKBOX_PACKAGES if p != "workbox-sw"),
    f"{TELEGRAM_DIST}telegram-web-apps.js",
)
# The page's own files, precached by the service worker with the vendor files and the model.
PAGE_FILES = (
    "index.html",
    "app.js",
    "worker.js",
    "pillow.js",
    "taxonomy.js",
    "telegram.js",
    "sendqueue.js",
    "style.css",
    "manifest.webmanifest",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "icons/apple-touch-icon.png",
)
# Workbox's importScripts load these with the worker itself; they need no precache entry.
_IMPORTED_BY_WORKER = tuple(name for name in VENDOR_FILES if "/workbox-" in name)


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `directory` (web/) with /model/ mapped to the exported model folder, and forwards
    POST /webapp/... to the bot's health server at `webapp_backend` when given (as the reverse
    proxy does in production: docs/web.md, "Inside Telegram")."""

    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".webmanifest": "application/manifest+json",
        ".wasm": "application/wasm",
    }

    def __init__(
        self,
        *args: object,
        directory: str,
        model_dir: str,
        webapp_backend: str | None = None,
        **kwargs: object,
    ) -> None:
        self.model_dir = model_dir
        self.webapp_backend = webapp_backend
        super().__init__(*args, directory=directory, **kwargs)

    def do_POST(self) -> None:
        url_path = _url_path(self.path)
        if not (self.webapp_backend and url_path.startswith(WEBAPP_PREFIX)):
            self.send_error(404, "not served")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        forwarded = urllib.request.Request(
            self.webapp_backend.rstrip("/") + url_path,
            data=body,
            headers={"Content-Type": self.headers.get("Content-Type", "")},
            method="POST",
        )
        try:
            with urllib.request.urlopen(forwarded, timeout=120) as response:
                status, content_type, answer = response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:  # the bot's 4xx: its JSON goes to the page
            status, content_type, answer = err.code, err.headers, err.read()
        except OSError:
            self.send_error(502, "the bot does not answer")
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def translate_path(self, path: str) -> str:
        url_path = _url_path(path)
        if url_path.startswith(MODEL_PREFIX):
            return str(Path(self.model_dir, url_path.removeprefix(MODEL_PREFIX)))
        return super().translate_path(path)

    def send_head(self):
        url_path = _url_path(self.path)
        if not _served(url_path):
            self.send_error(404, "not served")
            return None
        if url_path == f"/{SERVICE_WORKER}":
            body = service_worker(self.model_dir, self.directory).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()

    def end_headers(self) -> None:
        # Cross-origin isolation lets TF.js' WASM backend use threads (SharedArrayBuffer).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        # Revalidate every time (Last-Modified makes that cheap) so a new export shows at once.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def _url_path(path: str) -> str:
    return unquote(urlsplit(path).path)


def _served(url_path: str) -> bool:
    if url_path.startswith("/node_modules/"):
        return url_path.startswith(VENDOR_PREFIXES)
    if url_path.startswith(MODEL_PREFIX):
        name = url_path.removeprefix(MODEL_PREFIX)
        return "/" not in name and name.strip(".") != ""  # the export is one flat folder
    return True


def model_files(model_dir: str | Path) -> list[str]:
    """The exported model's files the page fetches: model.json, its shards, classes, metadata."""
    manifest = json.loads(Path(model_dir, "model.json").read_text())
    shards = [name for group in manifest["weightsManifest"] for name in group["paths"]]
    return ["model.json", *shards, "classes.json", "metadata.json"]


_revisions: dict[tuple[str, int, int], str] = {}


def _revision(path: Path) -> str:
    """sha256 of the file's content (first 16 hex digits), remembered per size and mtime."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _revisions:
        _revisions[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return _revisions[key]


def precache_manifest(model_dir: str | Path, web_root: str | Path = WEB_ROOT) -> list[dict]:
    """Workbox's precache entries ({url, revision}) for every file the page needs offline."""
    files = [
        *((name, Path(web_root, name)) for name in PAGE_FILES),
        *((name, Path(web_root, name)) for name in VENDOR_FILES if name not in _IMPORTED_BY_WORKER),
        *((f"model/{name}", Path(model_dir, name)) for name in model_files(model_dir)),
    ]
    return [{"url": url, "revision": _revision(path)} for url, path in files]


def service_worker(model_dir: str | Path, web_root: str | Path = WEB_ROOT) -> str:
    """web/sw.js with its precache manifest: it changes whenever a listed file changes."""
    template = Path(web_root, SERVICE_WORKER).read_text()
    manifest = json.dumps(precache_manifest(model_dir, web_root), indent=1)
    return template.replace("self.__WB_MANIFEST", manifest)


def missing_vendor_files(web_root: str | Path = WEB_ROOT) -> list[str]:
    return [name for name in VENDOR_FILES if not Path(web_root, name).is_file()]


def make_server(
    model_dir: str | Path,
    port: int = 8000,
    web_root: str | Path = WEB_ROOT,
    webapp_backend: str | None = None,
) -> http.server.ThreadingHTTPServer:
    """A server for 127.0.0.1:`port` (0 picks a free port: see server.server_port);
    `webapp_backend`: the bot's health server (http://host:port) that POST /webapp/ goes to."""
    handler = functools.partial(
        PageHandler,
        directory=str(web_root),
        model_dir=str(Path(model_dir).resolve()),
        webapp_backend=webapp_backend,
    )
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


@contextmanager
def serving(
    model_dir: str | Path, port: int = 0, webapp_backend: str | None = None
) -> Iterator[str]:
    """Serve in a background thread for the block; yields the page's URL."""
    server = make_server(model_dir, port, webapp_backend=webapp_backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
