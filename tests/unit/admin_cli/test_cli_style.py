"""ops/hotpath, ops/cache, ops/bench and ops/drill behave like ops/outbox and ops/dev: a bad number
is one usage line (exit 2), a flag works before or after the command, a stack that is down is one
line and exit 1 (``--json`` too: nothing on stdout), and the hotpath table fits 80 columns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from app.admin_cli import cache_check, hotpath
from app.admin_cli.hotpath_table import console_for, render
from app.admin_cli.replica_report import ReplicaRow
from app.contracts.policy import POLICIES, PathClass
from devtools.bench import __main__ as bench
from devtools.drill import __main__ as drill

Main = Callable[[list[str] | None], int]
NOTHING = "127.0.0.1:9"  # the discard port: nothing listens there
DSN = f"postgresql://x@{NOTHING}/catalog"
REDIS = f"redis://{NOTHING}/0"


@pytest.fixture(autouse=True)
def _no_stack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's exported stack must not leak into these tests."""
    for name in ("CATALOG_PRIMARY_DSN", "CATALOG_REDIS_URL", "CATALOG_APP_URLS", "CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)


def _usage_error(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ops/"), err
    return last


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (hotpath.main, ["--urls", f"http://{NOTHING}", "--window", "1e9"]),
        (bench.main, ["--runs", "0", "outbox"]),
        (bench.main, ["outbox", "--runs", "51"]),
        (bench.main, ["--seconds", "many"]),
        (bench.main, ["--connections", "0"]),
        (bench.main, ["--mix-seconds", "5"]),
        (bench.main, ["--window", "1"]),
        (bench.main, ["--users", "0"]),
        (bench.main, ["--writes", "-1"]),
        (bench.main, ["--events", "0"]),
        (bench.main, ["--batch", "0"]),
        (bench.main, ["--products", "1e12"]),
        (bench.main, ["--searches", "0"]),
        (bench.main, ["--dsn", DSN, "--redis-url", REDIS, "nosuchsection"]),
        (drill.main, ["--scale", "0"]),
        (drill.main, ["--workers", "0"]),
        (drill.main, ["--only", "nosuchfault"]),
        (cache_check.main, ["check", "--nosuchflag"]),
        (cache_check.main, []),
    ],
)
def test_bad_input_is_one_usage_line(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _usage_error(main, argv, capsys)


def test_bench_help_installs_nothing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.subprocess, "run", pytest.fail)  # the only way it installs wrk
    with pytest.raises(SystemExit) as exited:
        bench.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "Exit status: 0" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_help_cites_only_files_the_repo_has() -> None:
    root = Path(__file__).resolve().parents[3]
    for module in (bench, drill, hotpath, cache_check):
        doc = module.__doc__ or ""
        for word in doc.split():
            token = word.strip("(),.;:`'\"")
            if token.startswith("ops/") or token.endswith((".md", ".py", ".sh")):
                assert (root / token).exists(), f"{module.__name__} cites {token}"


def _down(main: Main, argv: list[str], tool: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{tool}: "), err
    assert "ops/dev status" in lines[0], err
    assert "ops/dev up" in lines[0], err
    return out, err


DOWN = [
    ("ops/cache", cache_check.main, ["--dsn", DSN, "--redis-url", REDIS], ["check"]),
    ("ops/bench", bench.main, ["--dsn", DSN, "--redis-url", REDIS], ["seed"]),
    ("ops/drill", drill.main, ["--run-dir", "/nonexistent/run"], []),
    ("ops/hotpath", hotpath.main, ["--urls", f"http://{NOTHING}", "--statements", "0"], []),
]


@pytest.mark.parametrize(("tool", "main", "flags", "command"), DOWN, ids=[d[0] for d in DOWN])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_stack_that_is_down_is_one_line_and_exit_1(
    tool: str, main: Main, flags: list[str], command: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*flags, *command] if where == "before" else [*command, *flags]
    out, _ = _down(main, argv, tool, capsys)
    assert out == ""


@pytest.mark.parametrize(("tool", "main", "flags", "command"), DOWN, ids=[d[0] for d in DOWN])
@pytest.mark.parametrize("where", ["before", "after"])
def test_json_with_the_stack_down_prints_only_the_error_line(
    tool: str, main: Main, flags: list[str], command: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--json", *flags, *command] if where == "before" else [*flags, *command, "--json"]
    out, _ = _down(main, argv, tool, capsys)
    if out.strip():
        json.loads(out)


def _metrics() -> str:
    """A scrape with traffic on the display routes and a write, as an instance would expose it."""
    lines = ["# TYPE litestar_requests_total counter"]
    hist = ["# TYPE litestar_request_duration_seconds histogram"]
    sources = ["# TYPE catalog_read_source_total counter"]
    for i, p in enumerate(q for q in POLICIES if q.path_class is not PathClass.OPS):
        labels = f'method="{p.method}",path="{p.template}"'
        count = 1_234_567 // (i + 1)
        lines.append(f"litestar_requests_total{{{labels}}} {count}")
        for le, share in (("0.005", 0.9), ("0.25", 0.999), ("+Inf", 1.0)):
            hist.append(f'litestar_request_duration_seconds_bucket{{{labels},le="{le}"}} {int(count * share)}')
        hist.append(f"litestar_request_duration_seconds_sum{{{labels}}} {count * 0.004}")
        hist.append(f"litestar_request_duration_seconds_count{{{labels}}} {count}")
        if p.path_class is PathClass.FAST:
            for source, share in (("cache", 0.97), ("replica", 0.025), ("primary", 0.005)):
                sources.append(f'catalog_read_source_total{{route="{p.name}",source="{source}"}} {count * share}')
    return "\n".join([*lines, *hist, *sources]) + "\n"


def test_hotpath_table_fits_80_columns_one_line_per_endpoint() -> None:
    """An 80-column terminal or a pipe used to fold every cell of 11 columns into 4-character stripes."""
    rows, summary = hotpath.build_rows(hotpath.parse_metrics(_metrics()))
    assert rows[0].requests > 0
    console = Console(record=True, width=80, force_terminal=False)
    replicas = [ReplicaRow("replica-1", instances=2, up=2, eligible=2, lag_s=0.012, reads=30_000.0, read_share=1.0)]
    query = "SELECT [bold]p.id[/] FROM products p WHERE p.id = ANY($1) AND p.archived_at IS NULL"
    statement = {"server": "primary", "calls": 1234, "total_ms": 5678.9, "mean_ms": 1.234, "query": query}
    render(rows, summary, replicas, [statement], console=console)
    text = console.export_text()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    for row in rows:
        if row.path_class == PathClass.OPS.value:
            continue
        # the endpoint's whole row on one line: its name, then its request count
        assert any(line.startswith(f"{row.endpoint} ") and f"{row.requests:,.0f}" in line for line in lines), row
        assert f"{row.endpoint}: {row.verdict}" in " ".join(text.split())
    assert "SELECT [bold]p.id[/]" in text  # data, not markup


def test_hotpath_in_a_pipe_is_80_columns_unless_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert console_for().width == 80
    monkeypatch.setenv("COLUMNS", "132")
    assert console_for().width == 132


def test_hotpath_json_keeps_its_shape() -> None:
    rows, summary = hotpath.build_rows(hotpath.parse_metrics(_metrics()))
    assert set(summary) == {
        "requests", "display_reads", "display_primary_share", "primary_reads_per_1000_display", "hottest",
    }  # fmt: skip
    assert {"endpoint", "method", "path", "path_class", "freshness", "requests", "share", "p50_ms", "p99_ms",
            "db_share", "served", "cache_hit", "verdict"} <= set(vars(rows[0]))  # fmt: skip


def test_drill_table_fits_80_columns_and_prints_notes_as_text() -> None:
    from devtools.drill.report import Row, judge
    from devtools.drill.report import render as render_drill

    rows = [
        judge(Row(fault="relay-mid-drain", display_reads=123_456, display_ok=123_000, writes_ok=12_345,
                  writes_refused=123, writes_failed=1, server_errors=12, drained_s=12.3, recovery_s=14.5,
                  notes=["redis: [Errno 111] Connection refused"])),
        judge(Row(fault="primary", display_reads=10, display_ok=10, drained_s=1.0, recovery_s=2.0)),
    ]  # fmt: skip
    console = Console(record=True, width=80, force_terminal=False)
    render_drill(rows, console)
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert any(line.startswith("relay-mid-drain ") and "FAIL" in line for line in text.splitlines()), text
    assert "[Errno 111]" in text
