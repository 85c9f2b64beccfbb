"""Base images built from Debian packages, for machines that reach no container registry.

``mmdebstrap`` builds a minimal Debian root file system with the packages an image needs (from
the same apt sources the machine uses, so a Debian mirror or proxy is enough), ``podman import``
(or ``docker import``) turns it into an image with the entrypoint and settings of the official
image it stands in for. compose.yaml and the Dockerfile name their base images through
variables (``CATALOG_POSTGRES_IMAGE``...); ``ops/compose`` points them at these when the official
images cannot be pulled. The tags say what is inside: Debian bookworm's versions, not the
official images' (PostgreSQL 15, Redis 7.0, nginx 1.22, Prometheus 2.42, Python 3.11; for the HA
topology, compose.ha.yaml: etcd 3.4 and HAProxy 2.6). The Postgres stand-in carries Python too:
the Dockerfile's ``patroni`` stage installs Patroni from PyPI on it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.containers.engine import Engine, EngineError

ROOT = Path(__file__).resolve().parents[3]
BASE_DIR = ROOT / "ops" / "containers" / "base"
PREFIX = "localhost/catalog-base"
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
# Documentation, manual pages and translations are not needed inside a container.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECIPE_LABEL = "io.catalog.base.recipe"


@dataclass(frozen=True)
class BaseImage:
    """One stand-in: what compose calls it, what goes in, how it starts."""

    key: str  # the compose variable CATALOG_<KEY>_IMAGE
    official: str  # what compose.yaml uses when a registry is reachable
    tag: str
    packages: tuple[str, ...]
    changes: tuple[str, ...]  # Dockerfile instructions applied by import
    hooks: tuple[str, ...] = ()  # mmdebstrap --customize-hook commands ($1 is the root)
    essential_hooks: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{PREFIX}/{self.key}:{self.tag}"

    @property
    def variable(self) -> str:
        return f"CATALOG_{self.key.upper()}_IMAGE"

    @property
    def recipe(self) -> str:
        """A digest of what goes into the image: a stand-in built from another recipe is rebuilt."""
        # Hooks name files by absolute path: the checkout's location is not part of the recipe.
        recipe = repr((self.packages, self.changes, self.hooks, self.essential_hooks)).replace(str(BASE_DIR), "<base>")
        digest = hashlib.sha256(recipe.encode())
        for path in sorted(BASE_DIR.glob(f"{self.key}-*")):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


BASE_IMAGES: tuple[BaseImage, ...] = (
    BaseImage(
        key="postgres",
        official="postgres:15.10-bookworm",
        tag="15-bookworm",
        # python3-venv: the Dockerfile's `patroni` stage (compose.ha.yaml) puts Patroni on this image.
        packages=("postgresql-15", "gosu", "python3-venv", "ca-certificates"),
        # postgresql-common would create a cluster of its own at install time.
        essential_hooks=(
            'mkdir -p "$1/etc/postgresql-common/createcluster.d"'
            ' && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/image.conf"',
        ),
        hooks=(
            f'install -m 755 {BASE_DIR / "postgres-entrypoint.sh"} "$1/usr/local/bin/docker-entrypoint.sh"',
            'mkdir -p "$1/var/lib/postgresql/data" "$1/var/run/postgresql"'
            ' && chroot "$1" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql',
        ),
        changes=(
            f"ENV PATH=/usr/lib/postgresql/15/bin:{PATH}",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["postgres"]',
            "STOPSIGNAL SIGINT",
            "EXPOSE 5432",
        ),
    ),
    BaseImage(
        key="redis",
        official="redis:7.2-bookworm",
        tag="7.0-bookworm",
        packages=("redis-server",),
        hooks=('mkdir -p "$1/data" && chroot "$1" chown redis:redis /data',),
        changes=("WORKDIR /data", "USER redis", 'CMD ["redis-server"]', "EXPOSE 6379"),
    ),
    BaseImage(
        key="nginx",
        official="nginx:1.27-bookworm",
        tag="1.22-bookworm",
        packages=("nginx-light", "gettext-base", "curl", "ca-certificates"),
        hooks=(
            'rm -f "$1/etc/nginx/sites-enabled/default"',
            'ln -sf /dev/stdout "$1/var/log/nginx/access.log" && ln -sf /dev/stderr "$1/var/log/nginx/error.log"',
        ),
        changes=('CMD ["nginx", "-g", "daemon off;"]', "STOPSIGNAL SIGQUIT", "EXPOSE 80"),
    ),
    BaseImage(
        key="prometheus",
        official="prom/prometheus:v2.54.1",
        tag="2.42-bookworm",
        packages=("prometheus",),
        hooks=('mkdir -p "$1/prometheus" && chroot "$1" chown nobody:nogroup /prometheus',),
        changes=(
            'ENTRYPOINT ["/usr/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]',
            "USER nobody",
            "WORKDIR /prometheus",
            "EXPOSE 9090",
        ),
    ),
    BaseImage(
        key="etcd",
        official="quay.io/coreos/etcd:v3.5.17",
        tag="3.4-bookworm",
        packages=("etcd-server", "etcd-client"),
        hooks=('mkdir -p "$1/etcd-data" && chmod 700 "$1/etcd-data"',),
        changes=(f"ENV PATH=/usr/local/bin:{PATH}", 'CMD ["etcd"]', "EXPOSE 2379", "EXPOSE 2380"),
    ),
    BaseImage(
        key="haproxy",
        official="haproxy:2.6-bookworm",
        tag="2.6-bookworm",
        packages=("haproxy",),
        hooks=('mkdir -p "$1/usr/local/etc/haproxy"',),
        changes=(
            'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
            "STOPSIGNAL SIGUSR1",
            "USER haproxy",
            "EXPOSE 5432",
        ),
    ),
    BaseImage(
        key="python",
        official="python:3.11.11-slim-bookworm",
        tag="3.11-bookworm",
        packages=("python3", "python3-venv", "python-is-python3", "ca-certificates"),
        changes=("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
    ),
)


def apt_sources() -> Path:
    """The machine's own Debian sources: whatever mirror or proxy apt already uses."""
    for path in SOURCES:
        if path.exists() and path.read_text(encoding="utf-8").strip():
            return path
    raise EngineError("no apt sources found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)")


def mmdebstrap_command(image: BaseImage, tarball: Path, sources: Path) -> list[str]:
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(image.packages)}"]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    command += [f"--essential-hook={hook}" for hook in image.essential_hooks]
    command += [f"--customize-hook={hook}" for hook in image.hooks]
    return [*command, "bookworm", str(tarball), str(sources)]


def build_base_image(engine: Engine, image: BaseImage, say: Callable[[str], None]) -> float:
    """Build one stand-in and tag it; returns the seconds it took."""
    started = time.monotonic()
    sources = apt_sources()
    with tempfile.TemporaryDirectory(prefix="catalog-image-") as scratch:
        tarball = Path(scratch) / f"{image.key}.tar"
        say(f"building {image.name} from Debian packages ({', '.join(image.packages)})")
        run(mmdebstrap_command(image, tarball, sources), f"mmdebstrap for {image.key}")
        labels = [
            f"LABEL org.opencontainers.image.title={image.key}",
            f"LABEL org.opencontainers.image.description=built-from-debian-bookworm-packages-for-{image.official}",
            f"LABEL {RECIPE_LABEL}={image.recipe}",
        ]
        changes = [arg for change in (*image.changes, *labels) for arg in ("--change", change)]
        run([engine.cli, "import", *changes, str(tarball), image.name], f"import of {image.key}")
    # The stand-in this one replaced, now untagged.
    engine.run("image", "prune", "--force", "--filter", f"label={RECIPE_LABEL}", check=False)
    return time.monotonic() - started


def run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise EngineError(f"{what} failed:\n{tail}")


def base_image(key: str) -> BaseImage:
    for image in BASE_IMAGES:
        if image.key == key:
            return image
    raise KeyError(key)


def resolve_base_images(
    engine: Engine, keys: tuple[str, ...], say: Callable[[str], None], *, environ: dict[str, str]
) -> dict[str, str]:
    """``CATALOG_<KEY>_IMAGE`` for each base image: the variable if the operator set it, else the
    official image if the engine has it or can pull it, else the Debian-built stand-in (built
    now if missing). A stand-in already built wins over a pull, so an air-gapped machine never
    waits on a registry twice."""
    chosen: dict[str, str] = {}
    for key in keys:
        image = base_image(key)
        if environ.get(image.variable):
            chosen[image.variable] = environ[image.variable]
        elif engine.has_image(image.official):
            chosen[image.variable] = image.official
        elif built_from_current_recipe(engine, image):
            chosen[image.variable] = image.name
        elif engine.run("pull", "--quiet", image.official, check=False, timeout=600).returncode == 0:
            chosen[image.variable] = image.official
        else:
            say(f"{image.official} cannot be pulled: building {image.name} from Debian packages")
            seconds = build_base_image(engine, image, say)
            say(f"{image.name} built in {seconds:.0f} s")
            chosen[image.variable] = image.name
    return chosen


def built_from_current_recipe(engine: Engine, image: BaseImage) -> bool:
    """The stand-in exists and was built from the recipe (packages, hooks, files) as it is now."""
    found = engine.run("image", "inspect", image.name, check=False)
    if found.returncode != 0:
        return False
    try:
        info = json.loads(found.stdout)[0]
    except (json.JSONDecodeError, IndexError, KeyError):
        return False
    labels = info.get("Labels") or (info.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(RECIPE_LABEL) == image.recipe)
