# Sourced by ops/* scripts: system packages (as root), then the project's venv with pinned dependencies.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
VENV="$ROOT/.venv"
# Patroni's own venv: Patroni runs as the postgres user and starts Postgres through a fresh
# interpreter, so that interpreter must be one the postgres user can run (the system's, not a
# pyenv build under /root). Its pins are in requirements.txt like every other package's.
HA_VENV="$ROOT/.venv-ha"
HA_PACKAGES=("patroni[etcd3]" psycopg2-binary)

ensure_system_packages() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
    /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    # The HA topology (ops/dev up --ha, its system test): etcd and HAProxy (Patroni: the venv's, pinned).
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    # Extra commands a script needs, each from the Debian package of the same name (ops/bench: wrk).
    local extra
    for extra in "$@"; do command -v "$extra" >/dev/null 2>&1 || missing+=("$extra"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing system packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # The Debian packages start their own services on the default ports; we only need the binaries.
        for svc in nginx redis-server haproxy etcd patroni; do service "$svc" stop >/dev/null 2>&1 || true; done
    else
        echo "missing system packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
}

ensure_venv() {
    local stamp="$VENV/.installed"
    if [ ! -x "$VENV/bin/python" ]; then
        python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/requirements.txt" -e "$ROOT[dev]"
        touch "$stamp"
    fi
    ensure_ha_venv
}

ensure_ha_venv() {
    local stamp="$HA_VENV/.installed"
    if [ ! -x "$HA_VENV/bin/python" ]; then
        /usr/bin/python3 -m venv "$HA_VENV"
    fi
    if [ ! -f "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ]; then
        "$HA_VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/requirements.txt" "${HA_PACKAGES[@]}"
        touch "$stamp"
    fi
}

# The stack's settings ($CATALOG_DEV_RUN_DIR/stack.env, .run/ by default, or $1) under whatever
# the caller exported: a flag beats an exported variable, which beats the file, which beats the
# tool's defaults.
load_stack_env() {
    local run_dir="${CATALOG_DEV_RUN_DIR:-$ROOT/.run}" line key file
    case "$run_dir" in /*) ;; *) run_dir="$ROOT/$run_dir" ;; esac  # relative: from the checkout, as ops/dev
    file="${1:-$run_dir/stack.env}"
    [ -f "$file" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in ''|'#'*) continue ;; esac
        key="${line%%=*}"
        if [ -z "${!key+x}" ]; then export "$line"; fi
    done < "$file"
}
