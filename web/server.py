"""A local static server for the web page: web/, the exported model, and TF.js from node_modules.

Only the TF.js bundles the page loads are served out of node_modules, so the page's files are all
that a browser can read. For development and tests on this machine: it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

WEB_ROOT = Path(__file__).resolve().parent
# What the page loads from npm packages: the TF.js bundle and the WASM backend with its .wasm files.
VENDOR_PREFIXES = (
    "/node_modules/@tensorflow/tfjs/dist/",
    "/node_modules/@tensorflow/tfjs-backend-wasm/dist/",
)
MODEL_PREFIX = "/model/"
# The files index.html loads from those packages; `npm ci` in web/ installs them.
VENDOR_FILES = (
    "node_modules/@tensorflow/tfjs/dist/tf.min.js",
    "node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
)


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `directory` (web/) with /model/ mapped to the exported model folder."""

    def __init__(self, *args: object, directory: str, model_dir: str, **kwargs: object) -> None:
        self.model_dir = model_dir
        super().__init__(*args, directory=directory, **kwargs)

    def translate_path(self, path: str) -> str:
        url_path = _url_path(path)
        if url_path.startswith(MODEL_PREFIX):
            return str(Path(self.model_dir, url_path.removeprefix(MODEL_PREFIX)))
        return super().translate_path(path)

    def send_head(self):
        if not _served(_url_path(self.path)):
            self.send_error(404, "not served")
            return None
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


def missing_vendor_files(web_root: str | Path = WEB_ROOT) -> list[str]:
    return [name for name in VENDOR_FILES if not Path(web_root, name).is_file()]


def make_server(
    model_dir: str | Path, port: int = 8000, web_root: str | Path = WEB_ROOT
) -> http.server.ThreadingHTTPServer:
    """A server for 127.0.0.1:`port` (0 picks a free port: see server.server_port)."""
    handler = functools.partial(
        PageHandler, directory=str(web_root), model_dir=str(Path(model_dir).resolve())
    )
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


@contextmanager
def serving(model_dir: str | Path, port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the block; yields the page's URL."""
    server = make_server(model_dir, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
