# The catalog service image. Built by `ops/compose up` (Docker or podman), linted by hadolint in
# the test suite.
#
# PYTHON_IMAGE: the base; `ops/compose` passes a Debian-built stand-in where no registry is
# reachable. Behind a TLS-intercepting proxy, give pip the proxy's CA as the build secret
# `extra_ca` (`ops/compose build --ca-file FILE`, or `--secret id=extra_ca,src=FILE`): it is
# mounted only while pip runs, so no layer of the image keeps it.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# The `patroni` target (compose.ha.yaml): Postgres members run by Patroni, on this base.
ARG POSTGRES_IMAGE=postgres:15.10-bookworm

# --- build: dependencies into a venv, from the pinned constraints, before any code (layer cache)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY pyproject.toml requirements.txt ./
# Only the runtime dependencies named in pyproject.toml, at the versions requirements.txt pins.
COPY ops/containers/pip-with-extra-ca.sh /usr/local/bin/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime.txt
RUN --mount=type=secret,id=extra_ca \
    pip-with-extra-ca.sh install --no-cache-dir -c requirements.txt -r runtime.txt

# --- runtime: the venv and the code, no build tools, not root
FROM ${PYTHON_IMAGE} AS runtime
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
# Shell form: podman 4.3's Docker API splits exec-form healthcheck arguments on spaces.
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
# uvicorn (uvloop + httptools) as PID 1 in exec form: SIGTERM reaches it and it drains gracefully.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- load: the runtime plus locust and the load test, for `docker compose --profile load`
FROM runtime AS load
COPY requirements.txt /tmp/requirements.txt
USER 0
COPY ops/containers/pip-with-extra-ca.sh /usr/local/bin/
RUN --mount=type=secret,id=extra_ca \
    pip-with-extra-ca.sh install --no-cache-dir -c /tmp/requirements.txt locust \
    && rm /tmp/requirements.txt /usr/local/bin/pip-with-extra-ca.sh
COPY --chown=10001:10001 tests/load ./tests/load
USER 10001:10001
ENTRYPOINT ["locust", "-f", "tests/load/locustfile.py", "--headless"]
CMD ["-t", "60s", "-u", "40", "-r", "10", "--only-summary"]

# --- patroni: a Postgres member run by Patroni (compose.ha.yaml, docs/adr/0018). Patroni comes
# from PyPI at the version requirements.txt pins (not Debian's 3.0.2, whose leader-key bug loses a
# promoted member's writes), in a venv on the image's own Python; the official postgres image has
# no Python, so it gets Debian's.
FROM ${POSTGRES_IMAGE} AS patroni
USER 0
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null || ! python3 -c "import ensurepip" 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/patroni \
    && mkdir -p /var/run/postgresql /var/lib/postgresql/data \
    && chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data
ENV PATH="/opt/patroni/bin:$PATH"
COPY requirements.txt /tmp/requirements.txt
COPY ops/containers/pip-with-extra-ca.sh /usr/local/bin/
RUN --mount=type=secret,id=extra_ca \
    pip-with-extra-ca.sh install --no-cache-dir -c /tmp/requirements.txt "patroni[etcd3]" psycopg2-binary \
    && rm /tmp/requirements.txt /usr/local/bin/pip-with-extra-ca.sh
COPY ops/containers/patroni.yml /etc/patroni/patroni.yml
COPY ops/containers/patroni-post-bootstrap.sh /usr/local/bin/patroni-post-bootstrap.sh
# By name: the official image and the Debian-built one give postgres different uids.
# hadolint ignore=DL3066
USER postgres
WORKDIR /var/lib/postgresql
EXPOSE 5432 8008
# Patroni stops Postgres itself on SIGTERM (a fast shutdown), then exits.
STOPSIGNAL SIGTERM
CMD ["patroni", "/etc/patroni/patroni.yml"]
