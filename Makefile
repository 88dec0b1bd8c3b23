# The two commands a newcomer needs: `make run` and `make test`. Each sets up what it needs.
VENV ?= .venv
PYTHON ?= python3
SHARED ?= ../shared
BIN := $(VENV)/bin
# Keras looks for its ImageNet weights in $(KERAS_HOME)/models/ and downloads them when missing.
# With no internet (CI), the genuine file from $(SHARED) is copied into this writable cache.
export KERAS_HOME ?= $(CURDIR)/.cache/keras
WEIGHTS := mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

.PHONY: setup run demo test lint messages

$(BIN)/flowerbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(KERAS_HOME)/models/$(WEIGHTS):
	mkdir -p $(dir $@)
	if [ -f $(SHARED)/keras/models/$(WEIGHTS) ]; then cp $(SHARED)/keras/models/$(WEIGHTS) $@; fi

setup: $(BIN)/flowerbot $(KERAS_HOME)/models/$(WEIGHTS)

# The bot's languages (docs/languages.md). `messages` after changing a text: extract them all
# into the template (`t` is a translator, N_ marks a constant), then update each catalogue.
# Nothing is compiled: the bot reads the .po files themselves (bot/i18n.py).
LOCALES := bot/locales
messages: $(BIN)/flowerbot
	$(BIN)/pybabel -q extract -F babel.cfg -k t -o $(LOCALES)/messages.pot --width=100 \
		--project=flowerbot --copyright-holder="the flowerbot authors" --no-location --sort-output .
	$(BIN)/pybabel -q update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages \
		--no-fuzzy-matching --ignore-obsolete --width=100

# The main job: the Telegram bot on the shipped model and a SQLite file (needs TELEGRAM_BOT_TOKEN).
run: setup
	$(BIN)/flowerbot bot

# No token at hand: identify the sample photos from the command line instead.
demo: setup
	$(BIN)/flowerbot identify $(SHARED)/samples/photos/*.jpg

# Two workers (pytest-xdist), each test file on one: on a 2-core machine much of a serial run waits
# on the bot and the retraining child, and a fresh run took 18:52 instead of 30:54. More workers
# would each hold TensorFlow and the model in memory.
test: setup lint web-setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -ra --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The web page (docs/web.md): the TF.js converter in its own venv, TF.js from npm, and the
# browser test and benchmark (they also need Debian's chromium: apt-get install -y chromium).
.PHONY: web-setup web test-web bench-web
WEB_VENV ?= .venv-web

$(WEB_VENV)/bin/tensorflowjs_converter: web/converter-requirements.txt
	$(PYTHON) -m venv $(WEB_VENV)
	$(WEB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WEB_VENV)/bin/python -m pip install --quiet -r web/converter-requirements.txt
	touch $@

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web-setup: setup $(WEB_VENV)/bin/tensorflowjs_converter web/node_modules/.package-lock.json

web: web-setup
	$(BIN)/flowerbot web

test-web: web-setup
	$(BIN)/python -m pytest -ra tests/test_web.py

bench-web: web-setup
	$(BIN)/python bench/web.py
