"""Bot configuration from the environment or a .env file, read once at start-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_training import defaults

# "<bot id>:<35 characters>", as BotFather hands it out.
TOKEN_PATTERN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    telegram_bot_token: SecretStr
    database_url: str = defaults.DATABASE_URL
    model_dir: Path = defaults.SHIPPED_MODEL_DIR
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    photos_per_minute: int = Field(10, ge=1)
    retention_days: int = Field(180, ge=1)
    max_download_mb: int = Field(20, ge=1)
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    # Set WEBHOOK_URL to receive updates through PTB's webhook server instead of long polling.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    # Concurrent photos are batched through the model: at most this many per call.
    batch_size: int = Field(16, ge=1)
    # Retraining from users' labels (model_training/retrain.py): where versions are kept, when
    # it runs, and how much one user's labels may weigh. The base data set travels in the
    # model folder, so nothing else is needed.
    model_registry_dir: Path = defaults.MODEL_REGISTRY_DIR
    retrain_cron: str = "0 3 * * *"
    retrain_min_new_labels: int = Field(20, ge=0)
    retrain_max_photos_per_user: int = Field(5, ge=1)
    # A crashed run's lock frees itself after this long; a healthy run takes minutes.
    retrain_lock_minutes: int = Field(60, ge=1)

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, token: SecretStr) -> SecretStr:
        if not TOKEN_PATTERN.match(token.get_secret_value()):
            raise ValueError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:letters)")
        return token

    @field_validator("retrain_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        CronTrigger.from_crontab(value)  # raises ValueError on a malformed expression
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value
