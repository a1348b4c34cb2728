# Voxcord in a container: `docker compose up` (compose.yaml) runs it next to PostgreSQL and Redis.
# The install steps are dev.py's (same lock, same no-deps editable install); tests/test_container.py
# keeps them in step.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/voxcord/venv \
    PATH=/opt/voxcord/venv/bin:$PATH

# A fixed uid without a login shell; the code stays root-owned and read-only to it.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin voxcord

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes. Every package comes as a
# wheel (FFmpeg inside imageio-ffmpeg, libopus inside PyAV), so the slim image needs no compiler.
COPY requirements.lock ./
RUN python -m venv /opt/voxcord/venv \
 && python -m pip install --quiet --disable-pip-version-check -r requirements.lock

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN python -m pip install --quiet --disable-pip-version-check --no-deps -e . \
 && mkdir -p /app/data \
 && chown voxcord:voxcord /app/data

# SQLite's default place (DATABASE_URL=sqlite:///data/voxcord.db), when no PostgreSQL is given.
VOLUME ["/app/data"]

# /metrics and /healthz on every address inside the container; publish the port only if you
# want to scrape it from outside (compose.yaml publishes it on the host's loopback).
ENV METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9464
EXPOSE 9464

USER voxcord

# 200 only while the gateway is connected and the database answers (bot/metrics/server.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]

# SIGTERM (docker stop) leaves voice, flushes and exits within 10 s (bot/__main__.py).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "bot"]
