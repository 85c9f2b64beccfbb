"""The app instances: ``python -m app serve`` (the image's server command), one per port."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field

from devtools.stack.config import PROJECT_DIR, StackConfig, StackError, ensure_port_free
from devtools.stack.layout import Layout
from devtools.stack.system import Host, last_log_line, wait_for


@dataclass
class Apps:
    config: StackConfig
    layout: Layout
    host: Host
    python: str
    # Apps this process started; kept so they are reaped here rather than left as zombies.
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str) -> None:
        if self.layout.running(service):
            return
        ensure_port_free(self.config, service)
        index = int(service.removeprefix("app-")) - 1
        port = self.config.app_ports[index]
        env = {**os.environ, **self.config.app_env(index)}
        log_path = self.layout.logs_dir / f"{service}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            [self.python, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: it outlives `ops/dev up`, and a Ctrl-C in that terminal does not reach it.
            start_new_session=True,
        )
        log.close()
        self._children[service] = proc
        self.layout.pidfile(service).write_text(f"{proc.pid}\n")

        def healthy() -> bool:
            if proc.poll() is not None:
                raise StackError(f"{service} exited ({proc.returncode}){last_log_line(log_path)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(healthy, f"{service} on port {port}", log=log_path)

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        child = self._children.pop(service, None)
        if child is not None and child.poll() is None:
            child.send_signal(sig)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.layout.stop(service, sig, timeout)
