"""Bot configuration from the environment or a .env file, read once at start-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# "<bot id>:<35 characters>", as BotFather hands it out.
TOKEN_PATTERN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    telegram_bot_token: SecretStr
    database_url: str = "sqlite:///flowerbot.sqlite"
    model_dir: Path = Path("models/oxford102")
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    photos_per_minute: int = Field(10, ge=1)
    retention_days: int = Field(180, ge=1)
    # Below this top-1 confidence the answer says plainly that the bot is unsure.
    unsure_below: float = Field(0.5, gt=0, lt=1)
    max_download_mb: int = Field(20, ge=1)
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    # Set WEBHOOK_URL to receive updates through PTB's webhook server instead of long polling.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    # Concurrent photos are batched through the model: at most this many per call.
    batch_size: int = Field(16, ge=1)

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, token: SecretStr) -> SecretStr:
        if not TOKEN_PATTERN.match(token.get_secret_value()):
            raise ValueError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:letters)")
        return token

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value
