"""The deployment files: docker-compose.yml validates (Compose's own check), in both profiles."""

from __future__ import annotations

import os
import shutil
import subprocess

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
