"""``ops/outbox``'s arguments: a bad number is a one-line usage error (exit 2), never a run."""

from __future__ import annotations

import pytest

from app.admin_cli import outbox


@pytest.mark.parametrize(
    "argv",
    [
        ["purge", "--older-than", "1s", "--batch-size", "0"],
        ["purge", "--older-than", "1s", "--batch-size", "-5"],
        ["purge", "--older-than", "1s", "--batch-size", "many"],
        ["purge", "--older-than", "-1h"],
        ["tail", "--limit", "0"],
    ],
)
def test_bad_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        outbox.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("ops/outbox")
