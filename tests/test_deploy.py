"""The deployment files: docker-compose.yml validates (Compose's own check), in both profiles;
the image's helper scripts (docker/) do their jobs. tests/test_docker.py runs the image itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT

COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_compose_file_validates(tmp_path) -> None:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:abc\n")

    def config(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPOSE, *args, "config"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], **env},
            timeout=60,
        )

    plain = config()
    assert plain.returncode == 0, plain.stderr
    assert "bot:" in plain.stdout
    # PostgreSQL only starts with --profile postgres.
    assert "profiles:\n    - postgres" in plain.stdout
    with_db = config("--profile", "postgres", POSTGRES_PASSWORD="secret")
    assert with_db.returncode == 0, with_db.stderr
    assert "image: postgres:16" in with_db.stdout and "POSTGRES_PASSWORD: secret" in with_db.stdout


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_compose_checks_health_with_the_images_script(tmp_path) -> None:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:abc\nFLOWERBOT_IMAGE=flowerbot:x\n")
    done = subprocess.run(
        [COMPOSE, "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "image: flowerbot:x" in done.stdout
    assert "- /opt/healthcheck.py" in done.stdout
    # The script the check runs is the one the Dockerfile puts there.
    assert "COPY docker/healthcheck.py /opt/healthcheck.py" in (ROOT / "Dockerfile").read_text()


def test_image_dependencies_swap_tensorflow_for_tensorflow_cpu() -> None:
    listed = subprocess.run(
        [sys.executable, ROOT / "docker" / "requirements.py", ROOT / "pyproject.toml", "tf-cpu==1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"]
    assert "tf-cpu==1" in listed
    assert not any(line.startswith("tensorflow") for line in listed)
    assert set(listed) - {"tf-cpu==1"} == (
        {d for d in dependencies if not d.startswith("tensorflow")}
        | set(project["build-system"]["requires"])
    )


class _Health(BaseHTTPRequestHandler):
    status = 200
    body = b'{"model_version": "v1", "database": "ok"}'

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "body", "healthy"),
    [
        (200, b'{"model_version": "v1", "database": "ok"}', True),
        (503, b'{"model_version": "v1", "database": "unreachable"}', False),
        (200, b'{"database": "unreachable"}', False),
        (200, b"<html>not the bot</html>", False),
    ],
)
def test_container_health_check_script(status: int, body: bytes, healthy: bool) -> None:
    handler = type("Handler", (_Health,), {"status": status, "body": body})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            done = health_check(server.server_address[1])
        finally:
            server.shutdown()
    assert (done.returncode == 0) is healthy, done.stdout


def test_container_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert health_check(port).returncode == 1


def health_check(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, ROOT / "docker" / "healthcheck.py"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HEALTH_PORT": str(port)},
        timeout=30,
    )
