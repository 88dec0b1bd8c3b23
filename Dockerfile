# The bot with the shipped model. Build: docker build -t flowerbot .  (see docker-compose.yml)
# Works on the official python:3.11-slim and on a Debian 12 stand-in with python3-venv
# (.ci/standin-python-image.sh); the build uses no BuildKit features.
#
# Keras' ImageNet MobileNetV2 weights are baked into the image (KERAS_HOME=/opt/keras), so the
# container never downloads anything at start. Two ways to provide them at build time:
#   1. Builder with internet: nothing to do, the build downloads them from Keras' own URL.
#   2. No internet: put the file into the build context first, e.g.
#        cp ~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 \
#           docker/keras/
#      (docker/keras/ is gitignored). Either way the file's SHA-256 is checked.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    KERAS_HOME=/opt/keras DATABASE_URL=sqlite:////data/flowerbot.sqlite \
    MODEL_REGISTRY_DIR=/data/models HEALTH_PORT=8080 MPLCONFIGDIR=/tmp/matplotlib

# A venv: Debian's own python3 refuses system-wide pip installs (PEP 668); the official image's
# does not care. /data is created owned by the bot's user before VOLUME, so a fresh named volume
# starts out writable by it (Docker copies the mount point's owner into an empty volume).
# KERAS_HOME is the user's too: Keras ignores one it cannot write to (and then looks in
# /tmp/.keras); the weights in it stay root's, read-only.
RUN python3 -m venv /opt/venv \
    && mkdir -p /opt/keras/models /data \
    && chown 1000:1000 /data /opt/keras

# Keras' weights (above): from the context when there, else downloaded; read-only to the bot.
COPY docker/keras/ /opt/keras/models/
COPY docker/keras_weights.py /tmp/
RUN python /tmp/keras_weights.py && rm /tmp/keras_weights.py

# Dependencies before the code: this layer (minutes, about 1 GB) depends on pyproject.toml only.
# The bot serves through LiteRT, but the image retrains, so it holds the `train` extra too.
# tensorflow-cpu is the same `tensorflow` module without CUDA kernels: pip cannot substitute one
# distribution for another by constraint, so the project's dependencies and its `train` extra
# are installed here with tensorflow swapped, and the project itself below with --no-deps (so `pip check` names
# tensorflow as missing; nothing imports it by distribution name). Also left out, in the same
# layer: TensorFlow's C++ headers (188 MB, for compiling custom ops) and libclang (62 MB, a
# code-generation tool it depends on but never imports).
ARG TENSORFLOW=tensorflow-cpu==2.19.0
COPY pyproject.toml docker/requirements.py /tmp/deps/
RUN python /tmp/deps/requirements.py /tmp/deps/pyproject.toml "$TENSORFLOW" \
        > /tmp/deps/requirements.txt \
    && pip install -r /tmp/deps/requirements.txt \
    && pip uninstall -y -q libclang \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf "$site/tensorflow/include" /tmp/deps

COPY docker/healthcheck.py /opt/healthcheck.py

# The code, installed in place (editable) so the image holds one copy of the 32 MB shipped
# model; compiled here because the bot's user cannot write __pycache__ into /app.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flowerbot flowerbot
COPY bot bot
COPY model_training model_training
COPY storage storage
# The command line's web commands import web/ (the page itself is served by `flowerbot web`).
COPY web/*.py web/*.html web/*.js web/*.css web/
# The bot reads its catalogues' .po files itself: nothing to compile for them.
RUN pip install --no-deps --no-build-isolation --editable . \
    && python -m compileall -q flowerbot bot model_training storage web \
    && rm -rf build *.egg-info

# The database and retrained model versions live on the volume.
VOLUME ["/data"]
USER 1000:1000
HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "/opt/healthcheck.py"]
CMD ["flowerbot", "bot"]
