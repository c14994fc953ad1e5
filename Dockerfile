# smsbot's image: `smsbot serve --workers 2` on port 8080, as an unprivileged user, the NLU
# model trained while the image is built (a start only loads it). Runs with the Redis store:
# see compose.yaml and README "Production".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SMSBOT_CACHE_DIR=/var/cache/smsbot

RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin smsbot \
 && install -d -o smsbot -g smsbot -m 0700 /var/cache/smsbot

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY intents intents
COPY dialogs dialogs
COPY common common
COPY policy policy
COPY config config
# The code looks for config/ (rule packs, lexicons, area codes, desk.yaml) beside its
# packages: it is not package data, so it is put there by hand.
RUN pip install . \
 && cp -r config "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/config" \
 && rm -rf /src

WORKDIR /var/lib/smsbot
USER smsbot
# Trained now, into SMSBOT_CACHE_DIR: 10-20 s once here rather than at every container start.
RUN smsbot intents train

EXPOSE 8080
# /readyz: the store answers, flows and the NLU are loaded, no carrier refuses our set-up.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status != 200)"]
# The supervisor is PID 1: it forwards SIGTERM once to each worker (graceful drain).
STOPSIGNAL SIGTERM
CMD ["smsbot", "serve", "--host", "0.0.0.0", "--workers", "2"]
