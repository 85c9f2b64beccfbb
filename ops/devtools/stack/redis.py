"""Redis: one daemonised ``redis-server``, no persistence (the cache is rebuilt from Postgres)."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.stack.config import StackConfig, ensure_port_free, port_open
from devtools.stack.layout import Layout
from devtools.stack.system import Host, wait_for, which


@dataclass
class Redis:
    config: StackConfig
    layout: Layout
    host: Host

    def start(self) -> None:
        if self.layout.running("redis"):
            return
        ensure_port_free(self.config, "redis")
        data = self.layout.data_dir("redis")
        data.mkdir(exist_ok=True)
        self.host.run(
            [
                which("redis-server"),
                "--port",
                str(self.config.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.layout.pidfile("redis")),
                "--logfile",
                str(self.layout.logs_dir / "redis.log"),
                "--dir",
                str(data),
                "--maxmemory",
                "512mb",
                # Never evict: an evicted fence would let a stale fill back in. When full, fills
                # fail (reads go around the cache) and invalidations wait in the outbox.
                "--maxmemory-policy",
                "noeviction",
            ]
        )
        wait_for(lambda: self.layout.running("redis") and port_open(self.config.redis_port), "redis")

    def stop(self) -> None:
        self.layout.stop("redis")
