from __future__ import annotations

import pytest

from app.core.problems import Problem
from app.writes.preconditions import parse_if_match


@pytest.mark.parametrize(("header", "version"), [(None, None), ("*", None), (' "3" ', 3), ('"12"', 12)])
def test_if_match_names_a_version_or_any(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ["3", '"three"', '"1", "2"', '""', '"' + "9" * 19 + '"'])
def test_anything_else_is_a_400(header: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_if_match(header)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_if_match"
