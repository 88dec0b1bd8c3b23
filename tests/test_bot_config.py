"""Bot configuration: read once from the environment; bad values stop the start with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.config import Settings

TOKEN = "123456:" + "A" * 35


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ADMIN_IDS", "17, 42,")
    monkeypatch.setenv("PHOTOS_PER_MINUTE", "3")
    settings = Settings()
    assert settings.admin_ids == frozenset({17, 42})
    assert settings.photos_per_minute == 3
    assert settings.database_url == "sqlite:///flowerbot.sqlite"
    assert TOKEN not in repr(settings)  # the token never reaches logs


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nRETENTION_DAYS=30\n")
    assert Settings().retention_days == 30


def test_missing_or_malformed_token_fails_with_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for token, expected in ((None, "not set"), ("not-a-token", "does not look like")):
        run_env = env if token is None else {**env, "TELEGRAM_BOT_TOKEN": token}
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "bot"],
            capture_output=True,
            text=True,
            env=run_env,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.startswith("flowerbot")]
        assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0] and expected in lines[0]
        assert "Traceback" not in result.stderr


def test_retraining_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("RETRAIN_CRON", "30 2 * * 1")
    monkeypatch.setenv("RETRAIN_MIN_NEW_LABELS", "50")
    settings = Settings()
    assert (settings.retrain_cron, settings.retrain_min_new_labels) == ("30 2 * * 1", 50)
    monkeypatch.setenv("RETRAIN_CRON", "every night")
    with pytest.raises(ValueError, match="retrain_cron"):
        Settings()
