from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("header", ["3", "null", '"3" "4"', '"3",, ', "", '"3', "W/3"])
def test_a_value_that_is_no_tag_list_names_no_version(header: str) -> None:
    assert parse_if_match(header) == [], "refused with 412, never treated as absent"


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ('"3"', True), ('W/"3"', True), ('"2", "3"', True), ('"2"', False), ("*", True)],
)
def test_if_none_match_uses_the_weak_comparison_and_star(header: str | None, matches: bool) -> None:
    assert etag_matches('"3"', header) is matches
