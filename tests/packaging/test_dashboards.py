"""The dashboard and scrape config only use metrics the service actually exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import app.core.metrics  # noqa: F401  (declares every metric the service exports)

OPS = Path(__file__).resolve().parents[2] / "ops"
LITESTAR = {"litestar_requests_total", "litestar_request_duration_seconds_bucket"}


def _exported() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    for name in list(names):
        names.update({f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names | LITESTAR


def test_every_dashboard_metric_exists() -> None:
    dashboard = json.loads((OPS / "grafana" / "catalog-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:catalog|litestar)_[a-z_]+)\b", e)}
    assert used, "the dashboard queries something"
    assert used - _exported() == set()


def test_scrape_config_parses() -> None:
    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"catalog-local", "catalog-app"}
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])
