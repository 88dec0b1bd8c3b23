"""Every default location in one place, read by the bot's settings, the CLI, the benchmarks and
the tests. Paths relative to the working directory are data the user owns (the database, the
registry of retrained models, the feature cache); the shipped model is package data, found from
wherever the package is installed."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "shipped" / "oxford102"
DATABASE_URL = "sqlite:///flowerbot.sqlite"
MODEL_REGISTRY_DIR = Path("models/registry")
# Backbone features of data sets, keyed by content: safe to delete, costly to rebuild.
FEATURE_CACHE_DIR = Path(".cache/features")
