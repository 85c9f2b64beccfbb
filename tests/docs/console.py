"""The README's ``console`` blocks as tests: each ``$ command`` (``> `` continues it) runs in one
bash per block, so functions and variables carry over; the lines under it are what it must
print.

Matching, line by line, after trailing spaces are dropped: an expected line equals the printed
one, or matches it as a glob when it holds ``*`` (``"version":*``); ``...`` stands for any number
of lines (none included). A command must exit 0 unless its expected output ends with
``[exit N]``. A command with no lines under it is not checked beyond its exit status.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```console\s*$")
MARK = "@@catalog-doc-test"


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    line: int = 0  # in the README, for the failure message

    @property
    def exit_status(self) -> int:
        if self.expected and (m := re.fullmatch(r"\[exit (\d+)\]", self.expected[-1])):
            return int(m.group(1))
        return 0

    @property
    def output(self) -> list[str]:
        return self.expected[:-1] if self.expected and self.expected[-1].startswith("[exit ") else self.expected


@dataclass
class Block:
    title: str
    line: int
    commands: list[Command]


def console_blocks(markdown: Path) -> list[Block]:
    blocks: list[Block] = []
    title = ""
    current: Block | None = None
    for number, raw in enumerate(markdown.read_text(encoding="utf-8").splitlines(), start=1):
        if current is None:
            if raw.startswith("#"):
                title = raw.lstrip("#").strip()
            elif FENCE.match(raw):
                current = Block(title, number, [])
            continue
        if raw.startswith("```"):
            blocks.append(current)
            current = None
        elif raw.startswith("$ "):
            current.commands.append(Command(raw[2:], line=number))
        elif raw.startswith("> ") and current.commands and not current.commands[-1].expected:
            current.commands[-1].text += "\n" + raw[2:]
        elif current.commands:
            current.commands[-1].expected.append(raw.rstrip())
    return blocks


def script(block: Block) -> str:
    """One bash script: each command's output between markers, with its exit status."""
    parts = ["exec 2>&1"]
    for index, command in enumerate(block.commands):
        parts.append(f"echo '{MARK} {index}'")
        code = (
            command.text
            if any(ln.strip() and not ln.lstrip().startswith("#") for ln in command.text.splitlines())
            else "true"
        )
        parts.append(f"{{\n{code}\n}}")
        parts.append(f'echo "{MARK} exit $?"')
    return "\n".join(parts) + "\n"


def run_block(block: Block, env: dict[str, str], cwd: Path, timeout: float = 120) -> list[tuple[list[str], int]]:
    """Each command's printed lines and exit status, in order."""
    result = subprocess.run(
        ["bash", "--noprofile", "--norc"], input=script(block), capture_output=True, text=True,
        env=env, cwd=cwd, timeout=timeout, check=False,
    )  # fmt: skip
    outputs: list[tuple[list[str], int]] = []
    lines: list[str] = []
    tail: list[str] = []
    for raw in result.stdout.splitlines():
        if raw.startswith(f"{MARK} exit "):
            outputs.append((lines, int(raw.rsplit(" ", 1)[1])))
        elif raw.startswith(f"{MARK} "):
            lines = []
        else:
            lines.append(raw.rstrip())
        tail = lines
    if len(outputs) < len(block.commands):  # bash gave up: keep what the last command printed
        outputs.append((tail + result.stderr.splitlines(), -1))
    return outputs


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is what ``expected`` describes (globs, ``...``)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    line = actual[0]
    same = line == head or ("*" in head and fnmatch.fnmatchcase(line, head))
    return same and matches(rest, actual[1:])


def mismatch(block: Block, outputs: list[tuple[list[str], int]]) -> str | None:
    """A readable account of the first command that did not do what the README says, or None."""
    if len(outputs) > len(block.commands):
        return "the block printed more results than it has commands"
    if len(outputs) < len(block.commands):
        return f"the block stopped after {len(outputs)} of {len(block.commands)} commands"
    for command, (actual, status) in zip(block.commands, outputs, strict=True):
        wanted = command.output
        ok_status = status == command.exit_status
        if ok_status and (not wanted or matches(wanted, actual)):
            continue
        shown = "\n".join(f"    {line}" for line in actual) or "    (nothing)"
        expected = "\n".join(f"    {line}" for line in wanted) or "    (not checked)"
        return (
            f"README line {command.line}: $ {command.text}\n  exit {status} (expected {command.exit_status})\n"
            f"  expected:\n{expected}\n  printed:\n{shown}"
        )
    return None
