"""The Docker image for real: built from the repository's Dockerfile, started with
docker-compose.yml, answering a photo through the fake Bot API, and keeping its SQLite data
across a restart. Skipped only when Docker cannot run at all (.ci/run starts dockerd).

Where python:3.11-slim cannot be pulled, .ci/standin-python-image.sh builds a Debian 12 stand-in
under that name first; the test prints which base it built on (run with -s to see it).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, WEIGHTS
from fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow

DOCKER = shutil.which("docker")
COMPOSE = shutil.which("docker-compose")
IMAGE = "flowerbot:test"
TOKEN = "123456:" + "D" * 35
ADMIN, ALICE = 1001, 42
# The cold build downloads about 700 MB of wheels; on a 2-core machine it takes minutes.
BUILD_TIMEOUT = 1500
START_TIMEOUT = 300
ANSWER_TIMEOUT = 180
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def run(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def say(line: str) -> None:
    """Progress in the test's output (pytest shows it with -s, or when the test fails)."""
    print(f"[test_docker] {line}", flush=True)


def docker_unusable() -> str | None:
    """Why Docker cannot run here, or None when it can."""
    if DOCKER is None or COMPOSE is None:
        return "docker or docker-compose is not installed (.ci/run installs them)"
    try:
        info = run(DOCKER, "info", timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if info.returncode != 0:
        return f"the Docker daemon is not running (.ci/run starts it): {info.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    """The image built from the working tree, on the real python:3.11-slim or a stand-in."""
    if (reason := docker_unusable()) is not None:
        pytest.skip(reason)
    base = run(str(ROOT / ".ci" / "standin-python-image.sh"), timeout=900)
    assert base.returncode == 0, base.stderr[-3000:]
    kind = base.stdout.strip().splitlines()[-1]
    say(
        "base image python:3.11-slim: "
        + (
            "a STAND-IN (debootstrap Debian 12 + python3), not the official image"
            if kind == "standin"
            else "the official image"
        )
    )
    with tempfile.TemporaryDirectory(prefix="flowerbot-context-") as context:
        build_context(Path(context))
        proxies = [
            f"--build-arg={name}={os.environ[name]}"
            for name in PROXY_VARIABLES
            if os.environ.get(name)
        ]
        previous = image_id()
        started = time.monotonic()
        build = run(DOCKER, "build", "-t", IMAGE, *proxies, context, timeout=BUILD_TIMEOUT)
        say(f"docker build: {time.monotonic() - started:.0f} s")
        assert build.returncode == 0, (build.stdout + build.stderr)[-5000:]
    if previous and previous != image_id():  # the last run's image, now untagged: only disk
        run(DOCKER, "rmi", previous)
    size = run(DOCKER, "image", "inspect", "-f", "{{.Size}}", IMAGE).stdout.strip()
    say(f"image {IMAGE}: {int(size) / 1e9:.2f} GB")
    return IMAGE


def image_id() -> str:
    return run(DOCKER, "image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()


def build_context(context: Path) -> None:
    """The working tree's files (tracked, or new and not ignored) plus Keras' weights in
    docker/keras/, so the build needs no download; .dockerignore then picks what goes in."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is still listed
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    weights = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS  # filled by conftest
    if weights.exists():
        (context / "docker" / "keras").mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights, context / "docker" / "keras" / WEIGHTS)
    else:
        say(f"no {weights}: the build downloads Keras' weights")


def bridge_address() -> str:
    """The host's address on Docker's default bridge, which containers can reach: its gateway,
    which Docker leaves out of `network inspect` when it picked the default (the subnet's first
    address)."""
    inspect = run(
        DOCKER,
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
    )
    assert inspect.returncode == 0, inspect.stderr
    subnet, _, gateway = inspect.stdout.strip().partition(" ")
    return gateway or str(next(ipaddress.ip_network(subnet).hosts()))


class Compose:
    """docker-compose on the repository's docker-compose.yml, in a folder of its own."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        shutil.copy(ROOT / "docker-compose.yml", folder)
        (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.folder = folder
        self.project = f"flowerbottest{os.getpid()}"

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = run(COMPOSE, "-p", self.project, *args, cwd=self.folder, timeout=timeout)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    def container(self) -> str:
        return self("ps", "-q", "bot").stdout.strip()

    def logs(self) -> str:
        done = run(COMPOSE, "-p", self.project, "logs", "--no-color", "--tail=60", cwd=self.folder)
        return done.stdout + done.stderr

    def wait_healthy(self) -> None:
        """Until Docker's health check (GET /healthz) passes; fails fast on a crash loop."""
        container = self.container()
        deadline = time.monotonic() + START_TIMEOUT
        status = ""
        while time.monotonic() < deadline:
            state = run(
                DOCKER,
                "inspect",
                "-f",
                "{{.State.Status}} {{.RestartCount}} {{if .State.Health}}"
                "{{.State.Health.Status}}{{else}}none{{end}}",
                container,
            ).stdout.split()
            status, restarts, health = state if len(state) == 3 else ("?", "0", "?")
            assert int(restarts) == 0 and status != "exited", f"the bot crashed:\n{self.logs()}"
            if health == "healthy":
                return
            time.sleep(2)
        raise AssertionError(f"not healthy within {START_TIMEOUT} s ({status}):\n{self.logs()}")


@pytest.fixture
def compose(image: str, tmp_path: Path) -> Iterator[tuple[Compose, FakeTelegram]]:
    with FakeTelegram(token=TOKEN, host=bridge_address()) as tg:
        stack = Compose(
            tmp_path,
            {
                "FLOWERBOT_IMAGE": image,
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_BASE_URL": tg.base_url,
                "TELEGRAM_FILE_BASE_URL": tg.base_file_url,
                "ADMIN_IDS": str(ADMIN),
            },
        )
        try:
            started = time.monotonic()
            stack("up", "-d", "--no-build")
            stack.wait_healthy()
            say(f"up and healthy in {time.monotonic() - started:.0f} s")
            yield stack, tg
        finally:
            # Containers and the volume go; the image stays, so the next run's build is cached.
            run(COMPOSE, "-p", stack.project, "down", "-v", "--timeout", "20", cwd=tmp_path)


def reply_text(tg: FakeTelegram, chat_id: int, after: int) -> str:
    call = tg.wait_for_sync("sendMessage", chat_id=chat_id, after=after, timeout=ANSWER_TIMEOUT)
    return call.params["text"]


def test_image_answers_a_photo_and_keeps_its_data_across_a_restart(compose, sample_photos):
    stack, tg = compose
    path, _, name = sample_photos[0]
    species = name.capitalize()

    mark = tg.mark()
    tg.user_photo(ALICE, path.read_bytes())
    answer = reply_text(tg, ALICE, mark)
    assert f"I think this is <b>{species}</b>" in answer.splitlines()[0], answer

    started = time.monotonic()
    stack("restart", timeout=120)
    stack.wait_healthy()
    say(f"restarted and healthy in {time.monotonic() - started:.0f} s")

    # /top5 answers the user's last photo again from the database: it survived the restart.
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = reply_text(tg, ALICE, mark)
    assert species in again.splitlines()[0], again
    mark = tg.mark()
    tg.user_command(ADMIN, "stats")
    assert "Last day</b>: 1 photos from 1 users" in reply_text(tg, ADMIN, mark)
