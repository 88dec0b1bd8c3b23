# The bot, with the shipped model. Build: docker build -t flowerbot .  (see docker-compose.yml)
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2 \
    KERAS_HOME=/data/keras MODEL_DIR=/app/models/oxford102 \
    DATABASE_URL=sqlite:////data/flowerbot.sqlite
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot bot
COPY model_training model_training
COPY storage storage
COPY models models
RUN pip install .
# The database and Keras' ImageNet weights (downloaded on first start) live on a volume.
VOLUME ["/data"]
USER 1000:1000
CMD ["flowerbot", "bot"]
