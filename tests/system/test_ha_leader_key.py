"""The race behind a frozen primary leading again, reproduced step by step against a real etcd.

A primary whose Patroni is frozen past the ttl (SIGSTOP, a VM pause, a long GC-like stall) loses
its lease and its leader key; a replica takes the key and is promoted, and acknowledges writes.
When the old Patroni wakes, its view of the cluster is the one it had before the freeze (it still
names itself the leader), so its first act is to renew the key. Patroni 3.0.2 (Debian bookworm's)
then grants itself a new lease and writes the key *unconditionally*: the old primary is the leader
again, the promoted member demotes, and every write it acknowledged is lost. The primary-freeze
drill row saw this in CI (98 acknowledged writes lost, the frozen member leading again).

The steps are the wake-up's, in order, so the race is deterministic: acquire, let the lease
expire, another member acquires, then renew from the stale view. The Patroni the stack runs (the
venv's pin, ops/devtools/stack/ha.py) must refuse that renewal and leave the key where it is.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.stack import free_port
from devtools.stack.system import which

pytestmark = pytest.mark.system
TTL_S = 3
SCOPE = "leader-key"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    port, peer = free_port(), free_port()
    client = f"http://127.0.0.1:{port}"
    peer_url = f"http://127.0.0.1:{peer}"
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [which("etcd"), "--name", "e1", "--data-dir", str(tmp_path / "etcd"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"e1={peer_url}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while _health(client) is not True:
            assert proc.poll() is None, (tmp_path / "etcd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "etcd did not become healthy"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def _health(client: str) -> bool:
    try:
        with urllib.request.urlopen(f"{client}/health", timeout=1) as r:  # noqa: S310  (loopback)
            return bool(json.loads(r.read()).get("health") == "true")
    except OSError:
        return False


def _leader_key(hosts: str) -> str | None:
    """The leader key's value, read from etcd itself (not through any Patroni cache)."""
    key = base64.b64encode(f"/service/{SCOPE}/leader".encode()).decode()
    request = urllib.request.Request(f"http://{hosts}/v3/kv/range", data=json.dumps({"key": key}).encode())
    with urllib.request.urlopen(request, timeout=2) as r:  # noqa: S310  (loopback)
        kvs = json.loads(r.read()).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def _member_dcs(hosts: str, name: str) -> Any:
    from patroni.dcs import get_dcs  # the venv's Patroni: what the HA stack runs

    config = {"scope": SCOPE, "name": name, "ttl": TTL_S, "loop_wait": 1, "retry_timeout": 2, "etcd3": {"hosts": hosts}}
    return get_dcs(config)


def wake_after_a_promotion(hosts: str) -> dict[str, Any]:
    """pg-1 leads, freezes past its ttl, pg-2 takes the key, pg-1 wakes and renews from its old view.

    Run in a process of its own: Patroni's etcd3 client keeps a watch thread that never ends.
    """
    old = _member_dcs(hosts, "pg-1")
    acquired = old.attempt_to_acquire_leader()
    view_before_freeze = old.get_cluster()
    # Frozen: nothing renews pg-1's lease, so the key goes with it after the ttl.
    deadline = time.monotonic() + TTL_S + 10
    while _leader_key(hosts) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    expired = _leader_key(hosts) is None
    promoted = _member_dcs(hosts, "pg-2").attempt_to_acquire_leader()
    after_promotion = _leader_key(hosts)
    # Woken: pg-1 renews from the view it had before the freeze (it names pg-1 the leader).
    renewed = old.update_leader(view_before_freeze, None)
    return {
        "acquired": acquired,
        "leader_in_view": view_before_freeze.leader and view_before_freeze.leader.name,
        "expired": expired,
        "promoted": promoted,
        "after_promotion": after_promotion,
        "renewed": renewed,
        "after_wake": _leader_key(hosts),
    }


def test_a_primary_waking_from_a_freeze_does_not_take_back_the_leader_key(etcd: str) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", f"import json, {__name__} as t; print(json.dumps(t.wake_after_a_promotion({etcd!r})))"],
        cwd=root, env={**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'ops'}"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    steps = json.loads(child.stdout.strip().splitlines()[-1])

    setup = {k: steps[k] for k in ("acquired", "leader_in_view", "expired", "promoted", "after_promotion")}
    assert setup == {"acquired": True, "leader_in_view": "pg-1", "expired": True, "promoted": True,
                     "after_promotion": "pg-2"}, "the race's steps did not happen as written"  # fmt: skip
    assert not steps["renewed"], "the woken primary was told it still leads"
    assert steps["after_wake"] == "pg-2", "the woken primary took the leader key from the promoted member"
