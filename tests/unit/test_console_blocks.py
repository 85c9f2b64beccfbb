"""The README doc-test runner's matching: it must fail a demo that prints nothing or the wrong
figure, and pass one that prints what the README says."""

from __future__ import annotations

from pathlib import Path

from tests.docs.console import Block, Command, console_blocks, matches, mismatch, run_block

ROOT = Path(__file__).resolve().parents[2]


def test_globs_and_ellipsis() -> None:
    assert matches(['"price_cents":4321'], ['"price_cents":4321'])
    assert matches(["x-read-source: *"], ["x-read-source: replica"])
    assert matches(["...", "pending: 0"], ["a", "b", "pending: 0"])
    assert matches(["...", "pending: 0", "..."], ["pending: 0"])
    assert not matches(['"price_cents":4321'], [])  # a demo that prints nothing
    assert not matches(['"price_cents":4321'], ['"price_cents":1000'])  # the wrong figure
    assert not matches(["pending: 0"], ["pending: 100"])
    assert not matches(["a"], ["a", "b"]), "no silent extra lines without ..."


def test_a_block_runs_in_one_shell_and_each_command_is_judged(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Demo\n\n```console\n$ show() { grep -o 'n=[0-9]*'; }\n$ echo 'n=42 other' | show\nn=42\n"
        "$ false\n[exit 1]\n$ echo one\n> echo two\none\ntwo\n```\n",
        encoding="utf-8",
    )
    (block,) = console_blocks(readme)
    assert block.title == "Demo"
    assert [c.text for c in block.commands] == [
        "show() { grep -o 'n=[0-9]*'; }",
        "echo 'n=42 other' | show",
        "false",
        "echo one\necho two",
    ]
    outputs = run_block(block, {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert mismatch(block, outputs) is None
    wrong = Block("Demo", 1, [Command("echo 'n=7' | grep -o 'n=[0-9]*'", ["n=42"], line=9)])
    report = mismatch(wrong, run_block(wrong, {"PATH": "/usr/bin:/bin"}, tmp_path))
    assert report is not None
    assert "README line 9" in report
    assert "n=7" in report


def test_the_readme_has_console_blocks_to_run() -> None:
    blocks = console_blocks(ROOT / "README.md")
    assert len(blocks) >= 4
    assert all(block.commands for block in blocks)
