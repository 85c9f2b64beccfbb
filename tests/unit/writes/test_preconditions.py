from __future__ import annotations

import pytest

from app.core.problems import Problem
from app.fastpath.routes import etag_matches
from app.writes.preconditions import parse_if_match


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        (' "3" ', [3]),
        ('"12"', [12]),
        ('"3", "4"', [3, 4]),
        ('W/"3"', []),  # the strong comparison: a weak tag matches nothing (412)
        ('W/"3", "4"', [4]),
        ('"not-a-version"', []),  # a tag we never issued matches nothing
    ],
)
def test_if_match_names_versions_or_any(header: str | None, versions: list[int] | None) -> None:
    assert parse_if_match(header) == versions


@pytest.mark.parametrize("header", ["3", '"3" "4"', '"3",, ', "", '"3', "W/3"])
def test_a_malformed_if_match_is_a_400(header: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_if_match(header)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_if_match"


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ('"3"', True), ('W/"3"', True), ('"2", "3"', True), ('"2"', False), ("*", True)],
)
def test_if_none_match_uses_the_weak_comparison_and_star(header: str | None, matches: bool) -> None:
    assert etag_matches('"3"', header) is matches
