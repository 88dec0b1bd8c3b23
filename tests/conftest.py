"""Shared fixtures. Keras' weight cache must be writable and filled before Keras is imported."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fake_telegram import FakeTelegram
from sqlalchemy import create_engine, make_url, text

from model_training import defaults
from storage import Database

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLOWERBOT_SHARED", ROOT.parent / "shared"))
OXFORD = SHARED / "data" / "oxford102-224"
SAMPLES = SHARED / "samples" / "photos"
SHIPPED_MODEL = defaults.SHIPPED_MODEL_DIR
# A PostgreSQL server the storage tests may create databases on (.ci/postgres.sh starts one).
POSTGRES_URL = os.environ.get("FLOWERBOT_TEST_POSTGRES_URL")
WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# The bot under test's token, as the fake Bot API (`tg`) knows it.
TOKEN = "123456:" + "A" * 35

os.environ.setdefault("KERAS_HOME", str(ROOT / ".cache" / "keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_cached = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
if not _cached.exists() and (SHARED / "keras" / "models" / WEIGHTS).exists():
    _cached.parent.mkdir(parents=True, exist_ok=True)
    # Under a new name first: the test workers start at once, and none may read half a file.
    partial = _cached.with_name(f".{uuid.uuid4().hex}.partial")
    shutil.copyfile(SHARED / "keras" / "models" / WEIGHTS, partial)
    partial.replace(_cached)


@pytest.fixture(scope="session")
def sample_photos() -> list[tuple[Path, int, str]]:
    """The real full-size photos: (path, class index, species name)."""
    with (SAMPLES / "labels.csv").open() as f:
        return [
            (SAMPLES / row["file"], int(row["class"]), row["name"]) for row in csv.DictReader(f)
        ]


@pytest.fixture(scope="session")
def classifier():
    from model_training.classifier import FlowerClassifier

    return FlowerClassifier.from_folder(SHIPPED_MODEL)


# -- databases: every storage check runs on a SQLite file and on PostgreSQL -----------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if POSTGRES_URL is None:
        pytest.skip("FLOWERBOT_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    name = f"flowerbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowerbot.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    """The fake Bot API server, for TOKEN's bot."""
    with FakeTelegram(token=TOKEN) as server:
        yield server


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py as a module (bench/ is scripts, not a package), as `bench_<name>`."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_bench(name: str, *args: str, cwd: Path = ROOT, timeout: int = 1200) -> str:
    """bench/<name>.py run as its docs say (its own process and TensorFlow); its standard output.
    The test fails with the end of its standard error when the script does."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a server that must know it up front
    (a webhook's URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def table_cells(line: str) -> list[str]:
    """One row of a Markdown table a bench printed -> its cells, stripped."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]
