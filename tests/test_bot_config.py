"""Bot configuration: read once from the environment; bad values stop the start with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram

from bot.config import Settings
from model_training import defaults

TOKEN = "123456:" + "A" * 35


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ADMIN_IDS", "17, 42,")
    monkeypatch.setenv("PHOTOS_PER_MINUTE", "3")
    monkeypatch.setenv("IDENTIFIER_IDS", "5,6")
    monkeypatch.setenv("IDENTIFIER_ALONE_CONFIRMS", "true")
    settings = Settings()
    assert settings.admin_ids == frozenset({17, 42})
    assert settings.identifier_ids == frozenset({5, 6}) and settings.identifier_alone_confirms
    assert settings.identifier_min_agreed == 0  # off unless asked for
    assert settings.photos_per_minute == 3
    assert settings.database_url == "sqlite:///flowerbot.sqlite" == defaults.DATABASE_URL
    assert TOKEN not in repr(settings)  # the token never reaches logs


def test_default_locations(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The shipped model is found from any working directory; the data the user owns is
    relative to it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    for name in ("MODEL_DIR", "MODEL_REGISTRY_DIR", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.model_dir == defaults.SHIPPED_MODEL_DIR
    assert settings.model_dir.is_absolute() and (settings.model_dir / "metadata.json").is_file()
    assert settings.model_dir.parts[-3:] == ("model_training", "shipped", "oxford102")
    assert settings.model_registry_dir == defaults.MODEL_REGISTRY_DIR == Path("models/registry")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(tmp_path / "registry"))
    settings = Settings()
    assert (settings.model_dir, settings.model_registry_dir) == (
        tmp_path / "mine",
        tmp_path / "registry",
    )


def test_retraining_needs_nothing_outside_the_model_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """The base data set travels in the model folder (base.npz): the settings that pointed at
    it, and the epochs and learning rate retraining now takes from the model's own recipe, are
    gone. A deployment whose .env still sets them starts as before."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("BASE_DATA_DIR", str(tmp_path / "oxford"))
    (tmp_path / ".env").write_text(
        "FEATURE_CACHE_DIR=/srv/features\nRETRAIN_EPOCHS=3\nRETRAIN_LEARNING_RATE=0.0001\n"
    )
    settings = Settings()
    gone = ("base_data_dir", "feature_cache_dir", "retrain_epochs", "retrain_learning_rate")
    assert not any(name in Settings.model_fields for name in gone)
    assert not any(hasattr(settings, name) for name in gone)


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
            [sys.executable, "-m", "flowerbot", "bot"],
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
    settings = Settings()
    assert (settings.retrain_cron, settings.retrain_min_new_labels) == ("0 3 * * *", 20)
    assert (settings.retrain_max_photos_per_user, settings.retrain_lock_minutes) == (5, 60)
    monkeypatch.setenv("RETRAIN_CRON", "30 2 * * 1")
    monkeypatch.setenv("RETRAIN_MIN_NEW_LABELS", "50")
    monkeypatch.setenv("RETRAIN_MAX_PHOTOS_PER_USER", "3")
    monkeypatch.setenv("RETRAIN_LOCK_MINUTES", "15")
    settings = Settings()
    assert (settings.retrain_cron, settings.retrain_min_new_labels) == ("30 2 * * 1", 50)
    assert (settings.retrain_max_photos_per_user, settings.retrain_lock_minutes) == (3, 15)
    monkeypatch.setenv("RETRAIN_MAX_PHOTOS_PER_USER", "0")  # a user must weigh something
    with pytest.raises(ValueError, match="retrain_max_photos_per_user"):
        Settings()
    monkeypatch.setenv("RETRAIN_MAX_PHOTOS_PER_USER", "3")
    monkeypatch.setenv("RETRAIN_CRON", "every night")
    with pytest.raises(ValueError, match="retrain_cron"):
        Settings()


def test_webapp_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    settings = Settings()
    assert (settings.webapp_url, settings.webapp_max_age_seconds) == (None, 86400)
    monkeypatch.setenv("WEBAPP_URL", "https://bot.example/camera/")
    monkeypatch.setenv("WEBAPP_MAX_AGE_SECONDS", "3600")
    settings = Settings()
    assert (settings.webapp_url, settings.webapp_max_age_seconds) == (
        "https://bot.example/camera/",
        3600,
    )
    monkeypatch.setenv("WEBAPP_URL", "http://bot.example/camera/")  # Telegram opens https only
    with pytest.raises(ValueError, match="WEBAPP_URL must be an https:// URL"):
        Settings()
    monkeypatch.setenv("WEBAPP_URL", "https://bot.example/camera/")
    monkeypatch.setenv("WEBAPP_MAX_AGE_SECONDS", "0")
    with pytest.raises(ValueError, match="webapp_max_age_seconds"):
        Settings()


# `flowerbot bot`, with a stand-in for the installed catalogue folder when one is given.
START = """import pathlib, sys
from bot import i18n
from flowerbot.cli import main
if len(sys.argv) > 1:
    i18n.LOCALES = pathlib.Path(sys.argv[1])
sys.exit(main(["bot"]))
"""


def test_start_problems_stop_the_bot_with_one_clear_line(tmp_path):
    """What the bot cannot start without, each said in one line and exit status 2, never a
    traceback. All but the model folder and the token are found before the database is
    touched, so nothing else is on stderr; those two come after the migrations, which log."""
    (tmp_path / "empty-model").mkdir()
    (tmp_path / "no-catalogues").mkdir()
    with socket.socket() as taken, FakeTelegram(token="654321:" + "B" * 35) as other_bot:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = {  # name: (environment, catalogue folder, expected message, alone on stderr)
            "catalogue": ({}, "no-catalogues", "cannot read the catalogue for 'es'", True),
            "database": (
                {"DATABASE_URL": "sqlite:////nonexistent/dir/x.db"},
                None,
                "DATABASE_URL: cannot open sqlite:////nonexistent/dir/x.db: unable to open",
                True,
            ),
            "health port": (
                {"HEALTH_PORT": port},
                None,
                f"HEALTH_PORT: cannot listen on 127.0.0.1:{port}: Address already in use",
                True,
            ),
            "webhook port": (
                {
                    "WEBHOOK_URL": "https://bot.example/hook",
                    "WEBHOOK_LISTEN": "127.0.0.1",
                    "WEBHOOK_PORT": port,
                },
                None,
                f"WEBHOOK_PORT: cannot listen on 127.0.0.1:{port}: Address already in use",
                True,
            ),
            "empty model folder": (
                {"MODEL_DIR": str(tmp_path / "empty-model")},
                None,
                f"MODEL_DIR: {tmp_path / 'empty-model'} is not a flowerbot model folder",
                False,
            ),
            "missing model folder": (
                {"MODEL_DIR": str(tmp_path / "missing")},
                None,
                f"MODEL_DIR: {tmp_path / 'missing'} is not a flowerbot model folder",
                False,
            ),
            "rejected token": (  # by a Bot API that knows another bot only
                {"TELEGRAM_API_BASE_URL": other_bot.base_url},
                None,
                "TELEGRAM_BOT_TOKEN: Telegram rejected the token",
                False,
            ),
        }
        started = {}
        for name, (env, catalogues, _, _) in cases.items():  # all at once: each takes ~10 s
            folder = tmp_path / name.replace(" ", "-")
            folder.mkdir()
            started[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    START,
                    *([str(tmp_path / catalogues)] if catalogues else []),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=folder,
                env={
                    "PATH": "/usr/bin:/bin",
                    "HOME": str(tmp_path),
                    "KERAS_HOME": os.environ["KERAS_HOME"],
                    "TF_CPP_MIN_LOG_LEVEL": "3",
                    "TELEGRAM_BOT_TOKEN": TOKEN,
                    "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",  # never reached
                    "HEALTH_PORT": "0",
                    **env,
                },
            )
        outcomes = {
            name: (process, *process.communicate(timeout=240)) for name, process in started.items()
        }
    for name, (process, _, stderr) in outcomes.items():
        expected, alone = cases[name][2:]
        lines = stderr.splitlines()
        assert process.returncode == 2, f"{name}: {stderr}"
        assert "Traceback" not in stderr, f"{name}: {stderr}"
        assert lines and lines[-1].startswith("flowerbot bot: "), f"{name}: {stderr}"
        assert expected in lines[-1], f"{name}: {lines[-1]}"
        assert [line for line in lines if line.startswith("flowerbot")] == lines[-1:]
        assert TOKEN not in stderr, f"{name}: {stderr}"
        if alone:
            assert len(lines) == 1, f"{name}: {stderr}"
