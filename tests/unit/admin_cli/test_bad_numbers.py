"""Numbers given to the ops commands: a bad one is a one-line usage error (exit 2), never a run
(``ops/outbox purge --batch-size 0`` used to loop; ``ops/hotpath --window -5`` was accepted)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.admin_cli import cache_check, hotpath, outbox

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (outbox.main, ["purge", "--older-than", "1s", "--batch-size", "0"]),
        (outbox.main, ["purge", "--older-than", "1s", "--batch-size", "-5"]),
        (outbox.main, ["purge", "--older-than", "1s", "--batch-size", "many"]),
        (outbox.main, ["purge", "--older-than", "-1h"]),
        (outbox.main, ["purge", "--older-than", "1m"]),  # younger than the fence TTL: recovery needs them
        (outbox.main, ["tail", "--limit", "0"]),
        (hotpath.main, ["--window", "-5"]),
        (hotpath.main, ["--window", "nan"]),
        (hotpath.main, ["--statements", "-1"]),
    ],
)
def test_bad_numbers_are_usage_errors(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("ops/"), err


@pytest.mark.parametrize("argv", [["-t"], ["-u", "0"], ["-u", "-5"], ["-t", "soon"], ["-r"]])
def test_ops_load_refuses_bad_values_before_it_starts(argv: list[str]) -> None:
    # ops/load is bash around locust: its own flags are checked before anything runs.
    result = subprocess.run(
        [str(ROOT / "ops" / "load"), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "unbound variable" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("ops/load: ")


NOTHING = "127.0.0.1:9"  # the discard port: nothing listens there on these machines


@pytest.mark.parametrize(
    ("main", "argv", "tool"),
    [
        (outbox.main, ["--dsn", f"postgresql://x@{NOTHING}/catalog", "status"], "ops/outbox"),
        (
            cache_check.main,
            ["--dsn", f"postgresql://x@{NOTHING}/c", "--redis-url", f"redis://{NOTHING}/0", "check"],
            "ops/cache",
        ),
        (hotpath.main, ["--urls", f"http://{NOTHING}", "--statements", "0"], "ops/hotpath"),
    ],
    ids=["outbox", "cache", "hotpath"],
)
def test_a_stack_that_is_down_is_one_line_and_exit_1(
    main: Any, argv: list[str], tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{tool}: cannot reach"), err
    assert "ops/dev status" in last, err


async def test_tail_prints_relay_names_and_errors_as_text_not_markup() -> None:
    """``[done by app-1]`` and errors like ``[Errno 111]`` used to vanish: rich read them as markup."""
    from datetime import UTC, datetime

    from rich.console import Console

    created = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rows = [
        {"id": 1, "created_at": created, "event_type": "product.updated", "aggregate_id": 7,
         "payload": {"version": 3}, "processed_at": created, "processed_by": "app-1", "attempts": 0,
         "last_error": None},
        {"id": 2, "created_at": created, "event_type": "product.updated", "aggregate_id": 8,
         "payload": {"version": 4}, "processed_at": None, "processed_by": None, "attempts": 2,
         "last_error": "redis: ConnectionError: [Errno 111] Connection refused"},
    ]  # fmt: skip

    class Conn:
        async def fetch(self, _query: str, *_args: object) -> list[dict[str, object]]:
            return rows

    console = Console(record=True, width=200)
    args = argparse.Namespace(limit=20, follow=False, for_seconds=None, json=False, interval=1.0)
    await outbox._tail(Conn(), args, console)  # type: ignore[arg-type]
    text = console.export_text()
    assert "[done by app-1]" in text
    assert "[FAILING x2: redis: ConnectionError: [Errno 111] Connection refused]" in text
