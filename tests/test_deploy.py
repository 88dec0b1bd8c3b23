"""The deployment files: docker-compose.yml validates (Compose's own check), in both profiles;
the image's helper scripts (docker/) do their jobs; the wheel that `pip install .` builds runs
the command line and the bot outside the repository. tests/test_docker.py runs the image."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES
from fake_telegram import FakeTelegram

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


def test_image_dependencies_are_the_train_install_with_tensorflow_cpu() -> None:
    """The image retrains: the plain dependencies and the `train` extra, tensorflow swapped."""
    listed = subprocess.run(
        [sys.executable, ROOT / "docker" / "requirements.py", ROOT / "pyproject.toml", "tf-cpu==1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["train"],
    ]
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


# -- the wheel: `pip install .` (not editable), run from a folder outside the repository --------
TOKEN = "123456:" + "A" * 35
ALICE = 42


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding flowerbot from a wheel built as `pip install .`
    builds it, off the files a clean checkout has (git's tracked and unignored ones: no .mo,
    no egg-info, no build/ left over).

    The wheel goes in with --no-deps and the venv then reaches the project venv's packages
    through a .pth file, read after its own site-packages: what is tested is the wheel (its
    packages, data files and entry point), not pip's resolver. Installing the dependencies for
    real (TensorFlow and the rest: a 2.6 GB venv) took 10 minutes on this 2-core machine with
    no pip cache, and then identified a photo the same; this way the fixture takes 20-30 s.
    The venv has no pip of its own: this one's installs into it (pip --python)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("building the wheel off a checkout needs git and the repository")
    tmp = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # not one deleted in the working tree
            (tmp / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / "src" / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", tmp / "src", "-w", tmp / "dist"], check=True, timeout=300
    )
    [wheel] = (tmp / "dist").glob("flowerbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "bot/locales/es/LC_MESSAGES/messages.po" in names
    assert not [name for name in names if name.endswith(".mo")]  # nothing compiled is needed
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    subprocess.run(
        [*pip, "--python", venv / "bin" / "python", "install", "-q", "--no-deps", wheel],
        check=True,
        timeout=300,
    )
    site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "flowerbot-dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")
    return venv / "bin"


def outside_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "KERAS_HOME": os.environ["KERAS_HOME"],  # the ImageNet weights (conftest)
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **extra,
    }


def test_the_wheel_identifies_a_photo_from_an_empty_folder(installed, tmp_path) -> None:
    where = subprocess.run(
        [installed / "python", "-c", "import bot, model_training; print(bot.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=outside_env(tmp_path),
        check=True,
    ).stdout
    assert where.startswith(str(installed.parent)), where  # the wheel's copy, not the checkout's
    photo = SAMPLES / "image_05429.jpg"  # a sunflower (labels.csv)
    done = subprocess.run(
        [installed / "flowerbot", "identify", "--lang", "es", photo],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=outside_env(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "1. girasol" in done.stdout, done.stdout


def test_the_wheel_runs_the_bot_from_an_empty_folder(installed, tmp_path) -> None:
    """`flowerbot bot` on its defaults (SQLite file, registry folder) in an empty folder, up to
    a Spanish answer to a photo: the catalogue comes from the installed .po."""
    folder = tmp_path / "bot"
    folder.mkdir()
    with FakeTelegram(token=TOKEN) as tg, (tmp_path / "bot.log").open("w+") as log:
        env = outside_env(
            tmp_path,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=tg.base_url,
            TELEGRAM_FILE_BASE_URL=tg.base_file_url,
            HEALTH_PORT="0",
        )
        bot = subprocess.Popen(
            [installed / "flowerbot", "bot"], cwd=folder, env=env, stdout=log, stderr=log
        )
        try:
            tg.set_user(ALICE, language_code="es")
            tg.user_photo(ALICE, (SAMPLES / "image_05429.jpg").read_bytes())
            try:
                reply = tg.wait_for_sync("sendMessage", chat_id=ALICE, timeout=240).result
            except AssertionError:
                log.seek(0)
                raise AssertionError(log.read()[-3000:]) from None
        finally:
            bot.terminate()  # SIGTERM: a graceful stop
            code = bot.wait(timeout=120)
        log.seek(0)
        output = log.read()
    assert "Girasol" in reply["text"], reply["text"]
    buttons = [button["text"] for row in tg.keyboard(reply) for button in row]
    assert "No es una flor" in buttons  # a text from the catalogue
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert (folder / "flowerbot.sqlite").is_file()  # the default database, where it was started
