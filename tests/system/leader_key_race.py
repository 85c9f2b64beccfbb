"""The wake-up of a frozen primary, step by step (tests/system/test_ha_leader_key.py runs this).

Run by the Python of Patroni's venv (the Patroni the HA stack runs), in a process of its own:
Patroni's etcd3 client keeps a watch thread that never ends. Prints the steps' outcomes as JSON.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
from typing import Any

TTL_S = 3
SCOPE = "leader-key"


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
    acquired = bool(old.attempt_to_acquire_leader())
    view_before_freeze = old.get_cluster()
    # Frozen: nothing renews pg-1's lease, so the key goes with it after the ttl.
    deadline = time.monotonic() + TTL_S + 10
    while _leader_key(hosts) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    expired = _leader_key(hosts) is None
    promoted = bool(_member_dcs(hosts, "pg-2").attempt_to_acquire_leader())
    after_promotion = _leader_key(hosts)
    # Woken: pg-1 renews from the view it had before the freeze (it names pg-1 the leader).
    renewed = bool(old.update_leader(view_before_freeze.leader, None))
    return {
        "acquired": acquired,
        "leader_in_view": view_before_freeze.leader and view_before_freeze.leader.name,
        "expired": expired,
        "promoted": promoted,
        "after_promotion": after_promotion,
        "renewed": renewed,
        "after_wake": _leader_key(hosts),
    }


if __name__ == "__main__":
    print(json.dumps(wake_after_a_promotion(sys.argv[1])))
