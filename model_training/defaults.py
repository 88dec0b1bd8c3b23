"""Every default location in one place, read by the bot's settings, the CLI, the benchmarks and
the tests. Paths relative to the working directory are data the user owns (the database, the
registry of retrained models, the feature cache); the shipped model is package data, found from
wherever the package is installed."""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "shipped" / "oxford102"
DATABASE_URL = "sqlite:///flowerbot.sqlite"
MODEL_REGISTRY_DIR = Path("models/registry")
# Backbone features of data sets, keyed by content: safe to delete, costly to rebuild.
FEATURE_CACHE_DIR = Path(".cache/features")

# The command line's and the benchmarks' model folder and feature cache: the environment's
# MODEL_DIR and FEATURE_CACHE_DIR when set (as for the bot's settings), read once at import.
DEFAULT_MODEL_DIR = Path(os.environ.get("MODEL_DIR", SHIPPED_MODEL_DIR))
DEFAULT_CACHE_DIR = Path(os.environ.get("FEATURE_CACHE_DIR", FEATURE_CACHE_DIR))
