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

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stack import free_port
from devtools.stack.ha import patroni_binary
from devtools.stack.system import which

pytestmark = pytest.mark.system


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


def test_a_primary_waking_from_a_freeze_does_not_take_back_the_leader_key(etcd: str) -> None:
    python = Path(patroni_binary()).with_name("python")  # the Patroni the HA stack runs
    child = subprocess.run([str(python), str(Path(__file__).with_name("leader_key_race.py")), etcd],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    steps = json.loads(child.stdout.strip().splitlines()[-1])

    setup = {k: steps[k] for k in ("acquired", "leader_in_view", "expired", "promoted", "after_promotion")}
    assert setup == {"acquired": True, "leader_in_view": "pg-1", "expired": True, "promoted": True,
                     "after_promotion": "pg-2"}, "the race's steps did not happen as written"  # fmt: skip
    assert not steps["renewed"], "the woken primary was told it still leads"
    assert steps["after_wake"] == "pg-2", "the woken primary took the leader key from the promoted member"
