"""nginx in front of the app instances.

The site comes from ``ops/nginx/catalog.conf.template``, the same file compose mounts, so the
proxy rules tested here are the ones deployed; only the main config around it is ours.
"""

from __future__ import annotations

import pwd
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from devtools.stack.config import PROJECT_DIR, StackConfig, StackError, ensure_port_free, port_open
from devtools.stack.layout import Layout
from devtools.stack.system import Host, wait_for, which

NGINX_TEMPLATE = PROJECT_DIR / "ops" / "nginx" / "catalog.conf.template"


@dataclass
class Nginx:
    config: StackConfig
    layout: Layout
    host: Host

    @property
    def prefix(self) -> Path:
        return self.layout.base_dir / "nginx"

    def render_site(self) -> str:
        """The shared template with this stack's values filled in."""
        c = self.config
        servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in c.app_ports)
        values = {
            "CATALOG_UPSTREAM": f"upstream catalog_app {{\n{servers}    keepalive 64;\n}}",
            "CATALOG_RESOLVER": "# fixed ports: nothing to resolve",
            "CATALOG_BACKEND": "catalog_app",
            "CATALOG_NGINX_LISTEN": f"127.0.0.1:{c.nginx_port}",
            "CATALOG_MAX_BODY": f"{c.max_body_bytes // 1024}k",
            "CATALOG_WRITE_RATE": "50r/s",
            "CATALOG_WRITE_BURST": "100",
            "CATALOG_PROXY_READ_TIMEOUT": c.proxy_read_timeout,
        }
        text = NGINX_TEMPLATE.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("${" + key + "}", value)
        leftover = re.search(r"\$\{CATALOG_[A-Z_]+\}", text)
        if leftover:
            raise StackError(f"nginx template placeholder {leftover.group(0)} is not filled by the launcher")
        return text

    def render_main(self) -> str:
        """``nginx.conf``: everything under the stack's directories, then the site."""
        base = self.prefix
        # As root nginx would drop its workers to `nobody`, who cannot write the temp paths below.
        user = "" if not self.host.is_root else f"user {pwd.getpwuid(0).pw_name};\n"
        logs = self.layout.logs_dir
        return (
            f"{user}worker_processes 1;\n"
            f"pid {self.layout.pidfile('nginx')};\n"
            f"error_log {logs / 'nginx-error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {logs / 'nginx-access.log'};\n"
            f"    client_body_temp_path {base}/client_body;\n"
            f"    proxy_temp_path {base}/proxy;\n"
            f"    fastcgi_temp_path {base}/fastcgi;\n"
            f"    uwsgi_temp_path {base}/uwsgi;\n"
            f"    scgi_temp_path {base}/scgi;\n"
            "    server_tokens off;\n"
            f"    include {base / 'catalog.conf'};\n"
            "}\n"
        )

    def write_conf(self) -> Path:
        """Write the site and the main config into the stack's nginx directory; returns the main config."""
        (self.prefix / "catalog.conf").write_text(self.render_site(), encoding="utf-8")
        main = self.prefix / "nginx.conf"
        main.write_text(self.render_main(), encoding="utf-8")
        return main

    def start(self) -> None:
        if self.layout.running("nginx"):
            return
        ensure_port_free(self.config, "nginx")
        main = self.write_conf()
        self.host.run([which("nginx"), "-p", str(self.prefix), "-c", str(main), "-t", "-q"])
        self.host.run([which("nginx"), "-p", str(self.prefix), "-c", str(main)])
        wait_for(
            lambda: self.layout.running("nginx") and port_open(self.config.nginx_port),
            "nginx",
            log=self.layout.logs_dir / "nginx-error.log",
        )

    def stop(self) -> None:
        self.layout.stop("nginx", signal.SIGQUIT)  # graceful: in-flight requests finish
