# pgdb-bot — `pgdb-bot run` in a slim, non-root image that works with a read-only root filesystem.
# Build: docker build -t pgdb-bot .
# Stage 1 builds wheels (the only stage with pip's build tooling); stage 2 installs them.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY handlers ./handlers
# The runtime dependencies at the exact versions of constraints.txt, the lock `make test` ran
# with: it pins every one of them and what they pull in (tests/test_packaging.py checks it).
RUN pip wheel --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="pgdb-bot" \
      org.opencontainers.image.description="ChatOps for a shared CloudNativePG cluster"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    PGDB_HTTP_PORT=8080
COPY --from=build /wheels /wheels
# Byte-compiled at install time, so nothing is written under / at run time.
RUN pip install --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --uid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin pgdb
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PGDB_HTTP_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["pgdb-bot"]
CMD ["run"]
