"""Bot configuration from the environment or a .env file, read once at start-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_training import defaults

# "<bot id>:<35 characters>", as BotFather hands it out.
TOKEN_PATTERN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")
# What Telegram accepts as a webhook's secret_token.
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


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
    # It listens on WEBHOOK_LISTEN:WEBHOOK_PORT at the URL's path and refuses (403) any update
    # without the secret token: WEBHOOK_SECRET, or one generated at first start and kept in the
    # database (so every process on that database shares it).
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None
    # GET /healthz (model version, database reachable) for health checks; 0 turns it off.
    health_listen: str = "127.0.0.1"
    health_port: int = Field(8080, ge=0, le=65535)
    # The camera page as the bot's Mini App (bot/webapp.py): WEBAPP_URL (https) puts it behind
    # the chat's menu button; POST /webapp/photo on the health server takes what it sends, signed
    # by Telegram at most WEBAPP_MAX_AGE_SECONDS before (a page left open longer is reopened).
    webapp_url: str | None = None
    webapp_max_age_seconds: int = Field(86400, ge=1)
    # How often a process looks for a version promoted or rolled back by another process.
    registry_poll_seconds: float = Field(30, gt=0)
    # Photos sent as an album are answered together once none has come in for this long:
    # Telegram delivers an album's photos within milliseconds of each other.
    album_wait_seconds: float = Field(1.0, gt=0, le=30)
    # Concurrent photos are batched through the model: at most this many per call.
    batch_size: int = Field(16, ge=1)
    # Under overload (bot/overload.py): once a new photo would wait longer than this for its
    # answer (the backlog over the answer rate measured over the last BACKLOG_WINDOW_SECONDS),
    # photos get the one-view answer (models with one-view cuts); beyond NEXT_IN_LINE_AFTER_
    # SECONDS, a "yours is next in line" reply at once, then the answer in turn.
    one_view_after_seconds: float = Field(1.0, ge=0)
    next_in_line_after_seconds: float = Field(1.5, ge=0)
    backlog_window_seconds: float = Field(5.0, gt=0)
    # Retraining from users' labels (model_training/retrain.py): where versions are kept, when
    # it runs, and how much one user's labels may weigh. The base data set travels in the
    # model folder, so nothing else is needed.
    model_registry_dir: Path = defaults.MODEL_REGISTRY_DIR
    retrain_cron: str = "0 3 * * *"
    retrain_min_new_labels: int = Field(20, ge=0)
    retrain_max_photos_per_user: int = Field(5, ge=1)
    # A crashed run's lock frees itself after this long; a healthy run takes minutes.
    retrain_lock_minutes: int = Field(60, ge=1)
    # A new species named by users is approved by itself once this many photos from this many
    # distinct users name it (0 turns automatic approval off: /addspecies only).
    species_min_photos: int = Field(20, ge=0)
    species_min_users: int = Field(3, ge=0)
    # Who /identify hands the photos users asked about to (docs/identifiers.md): these users and
    # the admins; with IDENTIFIER_ALONE_CONFIRMS one of IDENTIFIER_IDS confirms a name alone
    # (else two identifiers must agree). IDENTIFIER_MIN_AGREED > 0: users whose labels agreed
    # with that many confirmed names become identifiers by themselves.
    identifier_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    identifier_alone_confirms: bool = False
    identifier_min_agreed: int = Field(0, ge=0)

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, token: SecretStr) -> SecretStr:
        if not TOKEN_PATTERN.match(token.get_secret_value()):
            raise ValueError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:letters)")
        return token

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and not SECRET_PATTERN.match(secret.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return secret

    @field_validator("webhook_url")
    @classmethod
    def _https_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("https", "http"):
            raise ValueError("WEBHOOK_URL must be an https:// URL (what Telegram will POST to)")
        return url

    @field_validator("webapp_url")
    @classmethod
    def _webapp_https(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme != "https":
            raise ValueError("WEBAPP_URL must be an https:// URL (Telegram opens only those)")
        return url

    @field_validator("retrain_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        CronTrigger.from_crontab(value)  # raises ValueError on a malformed expression
        return value

    @field_validator("admin_ids", "identifier_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value
