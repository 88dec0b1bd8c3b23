# The bot, with the shipped model. Build: docker build -t flowerbot .  (see docker-compose.yml)
FROM python:3.11-slim
# The shipped model is package data (model_training/shipped/), found wherever pip installs it.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=3 \
    KERAS_HOME=/data/keras DATABASE_URL=sqlite:////data/flowerbot.sqlite \
    MODEL_REGISTRY_DIR=/data/models
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot bot
COPY model_training model_training
COPY storage storage
# The command line's web commands import web/ (the page itself is served by `flowerbot web`).
COPY web/*.py web/*.html web/*.js web/*.css web/
RUN pip install .
# The database and Keras' ImageNet weights (downloaded on first start) live on a volume.
VOLUME ["/data"]
USER 1000:1000
CMD ["flowerbot", "bot"]
