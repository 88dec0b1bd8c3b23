# The two commands a newcomer needs: `make run` and `make test`. Each sets up what it needs.
VENV ?= .venv
PYTHON ?= python3
SHARED ?= ../shared
BIN := $(VENV)/bin
# Keras looks for its ImageNet weights in $(KERAS_HOME)/models/ and downloads them when missing.
# With no internet (CI), the genuine file from $(SHARED) is copied into this writable cache.
export KERAS_HOME ?= $(CURDIR)/.cache/keras
WEIGHTS := mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

.PHONY: setup run demo test lint

$(BIN)/flowerbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(KERAS_HOME)/models/$(WEIGHTS):
	mkdir -p $(dir $@)
	if [ -f $(SHARED)/keras/models/$(WEIGHTS) ]; then cp $(SHARED)/keras/models/$(WEIGHTS) $@; fi

setup: $(BIN)/flowerbot $(KERAS_HOME)/models/$(WEIGHTS)

# The main job: the Telegram bot on the shipped model and a SQLite file (needs TELEGRAM_BOT_TOKEN).
run: setup
	$(BIN)/flowerbot bot

# No token at hand: identify the sample photos from the command line instead.
demo: setup
	$(BIN)/flowerbot identify $(SHARED)/samples/photos/*.jpg

test: setup lint
	$(BIN)/python -m pytest -ra

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
