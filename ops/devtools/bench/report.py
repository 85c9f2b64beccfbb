"""What an ``ops/bench`` run measured: printed line by line at 80 columns as it goes, or
collected for ``--json``."""

from __future__ import annotations

import textwrap
from typing import Any

import msgspec


class Report:
    """What a run measured: printed line by line as it goes, or collected for --json."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.sections: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] = {}

    def section(self, name: str, title: str) -> None:
        self._current = self.sections[name] = {"title": title, "lines": [], "figures": {}}
        if not self.as_json:
            print(textwrap.fill(title, 80, subsequent_indent="  "), flush=True)

    def figures(self, **figures: Any) -> None:
        self._current["figures"].update(figures)

    def line(self, label: str, value: str, verdict: str = "") -> None:
        self._current["lines"].append({"label": label.strip(), "value": value, "verdict": verdict})
        if not self.as_json:
            # 80 columns: the label and the figure on one line, the verdict after them if it fits,
            # else on the next line.
            head = f"  {label:<52} {value:>16}"
            if len(head) > 80:
                head = f"  {label}\n  {'':<52} {value:>16}"
            if verdict and len(head.splitlines()[-1]) + 2 + len(verdict) <= 80:
                head += f"  {verdict}"
            elif verdict:
                head += f"\n      {verdict}"
            print(head, flush=True)

    def to_json(self) -> str:
        misses = sum(line["verdict"].startswith("MISSES") for s in self.sections.values() for line in s["lines"])
        return msgspec.json.encode({"sections": self.sections, "misses": misses}).decode()
