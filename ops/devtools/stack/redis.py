"""Redis: one daemonised ``redis-server``, no persistence (the cache is rebuilt from Postgres); or,
with ``--redis-cluster``, a Redis Cluster of three masters with a replica each from the same binary.
"""

from __future__ import annotations

from dataclasses import dataclass

from devtools.stack.config import StackConfig, ensure_port_free, port_open
from devtools.stack.layout import Layout
from devtools.stack.system import Host, wait_for, which

CLUSTER_MASTERS = 3
# Small, so a failover drill takes a couple of seconds: a master unanswered this long is failed
# over to its replica.
CLUSTER_NODE_TIMEOUT_MS = 1500


def server_settings(*, cluster: bool) -> list[str]:
    """Every node's settings, on local binaries and in containers (tests/fixtures/containers.py)."""
    return [
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "128mb" if cluster else "512mb",
        # Never evict: an evicted fence would let a stale fill back in. When full, fills
        # fail (reads go around the cache) and invalidations wait in the outbox.
        "--maxmemory-policy",
        "noeviction",
    ]


@dataclass
class Redis:
    config: StackConfig
    layout: Layout
    host: Host

    def start(self, node: str = "redis") -> None:
        if self.layout.running(node):
            return
        ensure_port_free(self.config, node)
        data = self.layout.data_dir(node)
        data.mkdir(exist_ok=True)
        port = self.config.port_of(node)
        log = self.layout.logs_dir / f"{node}.log"
        cluster = (
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",  # in --dir: a restarted node rejoins as what the cluster says it is
                "--cluster-node-timeout",
                str(CLUSTER_NODE_TIMEOUT_MS),
                # A replica takes over however far behind it is: the relays' mark per master
                # notices what it missed and re-applies it (docs/adr/0015). Better than a shard
                # that stays down.
                "--cluster-replica-validity-factor",
                "0",
                # Replicas sync at once instead of after the default 5 s wait for other replicas.
                "--repl-diskless-sync-delay",
                "0",
            ]
            if self.config.redis_cluster
            else []
        )
        self.host.run(
            [
                which("redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.layout.pidfile(node)),
                "--logfile",
                str(log),
                "--dir",
                str(data),
                *server_settings(cluster=self.config.redis_cluster),
                *cluster,
            ]
        )
        wait_for(lambda: self.layout.running(node) and port_open(port), node, log=log)

    def start_all(self) -> None:
        for node in self.config.redis_nodes:
            self.start(node)
        if self.config.redis_cluster:
            self.create_cluster()

    def create_cluster(self) -> None:
        """Join the nodes into one cluster (once), then wait until every node says it is whole."""
        ports = [self.config.port_of(node) for node in self.config.redis_nodes]
        if not self._state_ok(ports[0]) and self._known_nodes(ports[0]) < 2:
            replicas = len(ports) // CLUSTER_MASTERS - 1
            self.host.run(
                [
                    which("redis-cli"),
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas",
                    str(replicas),
                    "--cluster-yes",
                ]
            )
        wait_for(lambda: all(self._state_ok(p) for p in ports), "redis cluster_state:ok")
        # A replica that has not synced yet could not take over from its master.
        wait_for(lambda: all(self._synced(p) for p in ports), "redis cluster replicas in sync")

    def cluster_info(self, port: int) -> str:
        result = self.host.run([which("redis-cli"), "-p", str(port), "cluster", "info"], check=False)
        return result.stdout if result.returncode == 0 else ""

    def _state_ok(self, port: int) -> bool:
        return "cluster_state:ok" in self.cluster_info(port)

    def _synced(self, port: int) -> bool:
        result = self.host.run([which("redis-cli"), "-p", str(port), "info", "replication"], check=False)
        return "role:master" in result.stdout or "master_link_status:up" in result.stdout

    def _known_nodes(self, port: int) -> int:
        for line in self.cluster_info(port).splitlines():
            if line.startswith("cluster_known_nodes:"):
                return int(line.split(":", 1)[1])
        return 0

    def stop(self, node: str = "redis") -> None:
        self.layout.stop(node)
