# syntax=docker/dockerfile:1
# The catalog service image. Validated statically here (hadolint, in the test suite); the
# machines this project is developed on have no Docker engine.

# --- build: dependencies into a venv, from the pinned constraints, before any code (layer cache)
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY pyproject.toml requirements.txt ./
# Only the runtime dependencies named in pyproject.toml, at the versions requirements.txt pins.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime.txt \
    && pip install --no-cache-dir -c requirements.txt -r runtime.txt

# --- runtime: the venv and the code, no build tools, not root
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv/catalog \
    CATALOG_ENV=production
RUN groupadd --system --gid 10001 catalog \
    && useradd --system --uid 10001 --gid catalog --home-dir /srv/catalog --shell /usr/sbin/nologin catalog
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/catalog
COPY --chown=10001:10001 app ./app
COPY --chown=10001:10001 sql ./sql
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn (uvloop + httptools) as PID 1 in exec form: SIGTERM reaches it and it drains gracefully.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- load: the runtime plus locust and the load test, for `docker compose --profile load`
FROM runtime AS load
COPY requirements.txt /tmp/requirements.txt
USER 0
RUN pip install --no-cache-dir -c /tmp/requirements.txt locust && rm /tmp/requirements.txt
COPY --chown=10001:10001 tests/load ./tests/load
USER 10001:10001
ENTRYPOINT ["locust", "-f", "tests/load/locustfile.py", "--headless"]
CMD ["-t", "60s", "-u", "40", "-r", "10", "--only-summary"]
