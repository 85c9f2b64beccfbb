"""The load mix's id universe: only the ids it was given, Zipf-popular, stable across refreshes."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from devtools.load.universe import ProductUniverse, read_ids, write_ids, zipf_sampler


def test_draws_only_the_ids_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    write_ids(path, [3, 7, 11, 40, 41])
    universe = ProductUniverse(path, fallback=10_000)
    assert {universe() for _ in range(5000)} == {3, 7, 11, 40, 41}


def test_without_a_file_the_seed_range(tmp_path: Path) -> None:
    universe = ProductUniverse(None, fallback=50)
    assert {universe() for _ in range(20_000)} <= set(range(1, 51))
    missing = ProductUniverse(tmp_path / "absent.txt", fallback=5)
    assert {missing() for _ in range(2000)} == {1, 2, 3, 4, 5}


def test_a_rewritten_file_is_read_again_and_keeps_the_hot_set(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    ids = list(range(1, 1001))
    write_ids(path, ids)
    universe = ProductUniverse(path, fallback=0, check_s=0.0)
    hottest = collections.Counter(universe() for _ in range(50_000)).most_common(3)
    gone = hottest[2][0]
    write_ids(path, [i for i in ids if i != gone])
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1))  # a new stamp even on a coarse clock
    draws = collections.Counter(universe() for _ in range(50_000))
    assert gone not in draws
    assert [pid for pid, _ in draws.most_common(2)] == [pid for pid, _ in hottest[:2]], "popularity stays put"


def test_zipf_popularity_is_skewed() -> None:
    sample = zipf_sampler(range(1, 10_001), 1.1)
    counts = collections.Counter(sample() for _ in range(50_000))
    top_share = sum(n for _, n in counts.most_common(100)) / 50_000
    assert top_share > 0.4, "the hundred most popular of 10,000 products draw a large share"
    with pytest.raises(ValueError, match="no products"):
        zipf_sampler([], 1.1)


def test_write_ids_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    write_ids(path, [1, 2])
    write_ids(path, [5])
    assert read_ids(path) == [5]
    assert not path.with_suffix(".partial").exists()
