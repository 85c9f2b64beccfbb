"""ops/compose settings: generated once and kept (the volumes were initialised with those
passwords), and overridden flag > exported environment > the project's file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.containers import project as project_module
from devtools.containers.engine import Engine, EngineError
from devtools.containers.project import Project

ENGINE = Engine(kind="docker", cli="docker", compose=("docker", "compose"))


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(project_module, "RUN_DIR", tmp_path)
    for key in (*project_module.SECRETS, *project_module.DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_secrets_are_generated_once_and_found_again() -> None:
    first = Project(ENGINE, name="demo")
    values = first.settings()
    first.save(values)
    again = Project(ENGINE, name="demo").settings()
    for key in project_module.SECRETS:
        assert len(values[key]) >= 24
        assert again[key] == values[key], key
    assert values["POSTGRES_PASSWORD"] != values["CATALOG_ADMIN_TOKEN"]
    assert first.env_file.stat().st_mode & 0o777 == 0o600


def test_projects_keep_their_own_settings() -> None:
    one, two = Project(ENGINE, name="one"), Project(ENGINE, name="two")
    one.save(one.settings())
    two.save(two.settings())
    assert one.settings()["POSTGRES_PASSWORD"] != two.settings()["POSTGRES_PASSWORD"]


def test_flag_beats_environment_beats_file_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = Project(ENGINE, name="demo")
    assert saved.settings()["CATALOG_HTTP_PORT"] == "8080"
    saved.save({**saved.settings(), "CATALOG_HTTP_PORT": "18080"})
    assert Project(ENGINE, name="demo").settings()["CATALOG_HTTP_PORT"] == "18080"
    monkeypatch.setenv("CATALOG_HTTP_PORT", "28080")
    assert Project(ENGINE, name="demo").settings()["CATALOG_HTTP_PORT"] == "28080"
    flagged = Project(ENGINE, name="demo", overrides={"CATALOG_HTTP_PORT": "38080"})
    assert flagged.settings()["CATALOG_HTTP_PORT"] == "38080"


def test_plain_http_gets_a_cookie_the_browser_sends_back() -> None:
    assert Project(ENGINE, name="demo").settings()["CATALOG_RYW_COOKIE_SECURE"] == "false"


def test_a_secret_other_than_the_volumes_is_refused_not_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Project(ENGINE, name="demo")
    first.save(first.settings())
    kept = first.saved()["POSTGRES_PASSWORD"]
    monkeypatch.setenv("POSTGRES_PASSWORD", "something-else")
    with pytest.raises(
        EngineError, match="POSTGRES_PASSWORD is set to another value than the one this project's volumes"
    ):
        Project(ENGINE, name="demo").settings()
    assert Project(ENGINE, name="demo").saved()["POSTGRES_PASSWORD"] == kept
    monkeypatch.setenv("POSTGRES_PASSWORD", kept)
    assert Project(ENGINE, name="demo").settings()["POSTGRES_PASSWORD"] == kept


def test_the_ha_topology_is_saved_and_later_commands_run_its_file(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> object:
        ran.append(command)
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(project_module.subprocess, "run", fake_run)
    up = Project(ENGINE, name="demo", ha=True)
    values = up.settings()
    up.save(values)
    later = Project(ENGINE, name="demo")  # `ops/compose down` names no topology
    later.follow_saved_topology()
    later.compose("down", values=later.settings())
    files = [ran[-1][i + 1] for i, arg in enumerate(ran[-1]) if arg == "-f"]
    assert [Path(f).name for f in files] == ["compose.ha.yaml"]
    single = Project(ENGINE, name="other")
    single.follow_saved_topology()
    single.compose("down", values=single.settings())
    assert [Path(ran[-1][i + 1]).name for i, arg in enumerate(ran[-1]) if arg == "-f"] == ["compose.yaml"]
