# syntax=docker/dockerfile:1
# Live Studio: one image, several roles (web, sockets, hooks, worker, watcher, reconciler,
# multistream).
#   docker build -t live-studio .
#   docker run live-studio web|sockets|hooks|worker|watcher|reconciler|multistream|migrate
# See docs/deploy.md; docker-compose.yml wires the roles together.

# --- front-end packages (hls.js), from package-lock.json ----------------------
FROM node:20-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- Python dependencies into a virtualenv ------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# --- runtime -------------------------------------------------------------------
FROM python:3.11-slim AS runtime
# ffmpeg: the websocket ingest re-muxes browser MediaRecorder chunks to RTMP;
# the multistream relays copy live streams to their targets with it (RTMPS
# through its TLS support). Thumbnails are cut in the workers by PyAV (`av`,
# whose wheel carries FFmpeg's libraries).
# tini: PID 1 that forwards signals (gunicorn HUP/TERM) and reaps children.
# Debian package versions move with security updates; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid studio --home-dir /app --shell /usr/sbin/nologin studio

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=studio \
    PROMETHEUS_MULTIPROC_DIR=/tmp/studio-metrics \
    STUDIO_HLS_DIR=/data/hls

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=studio:studio studio/ studio/
COPY --chown=studio:studio workers/ workers/
COPY --chown=studio:studio migrations/ migrations/
COPY --chown=studio:studio wsgi.py gunicorn.conf.py gunicorn_sockets.conf.py gunicorn_hooks.conf.py ./
COPY --chown=studio:studio deploy/entrypoint.sh /usr/local/bin/studio-entrypoint
COPY --from=assets --chown=studio:studio /build/node_modules/hls.js/dist/hls.min.js studio/static/vendor/hls.min.js

RUN mkdir -p /data/hls && chown studio:studio /data/hls
USER 10001:10001
EXPOSE 8000 8001 8002 9101
# Health checks differ per role (web: /healthz; workers: their metrics port): see docker-compose.yml.
# -e 143: a role killed by the SIGTERM that stops it (only possible in the first
# milliseconds of the interpreter's start, before the roles install their
# handlers) is a clean stop, reported as exit 0 like every later SIGTERM.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "studio-entrypoint"]
CMD ["web"]
