"""``mscrowd release create | list`` and ``mscrowd export`` on the embedded default: a build
with its progress bar, the list, an export checked file by file, and clear errors."""

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.core.config import get_settings
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from tests.backend.releases.cases import labelled_project

runner = CliRunner()


def test_create_list_and_export(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    crowd = labelled_project(engine, Storage(settings.storage_url), per_volunteer=36)
    engine.dispose()
    unknown = runner.invoke(app, ["release", "create", "--project", "nope"])
    assert unknown.exit_code == 1
    assert "No project 'nope'" in unknown.output
    empty = runner.invoke(
        app, ["release", "create", "--project", crowd.project, "--min-labels", "50"]
    )
    assert empty.exit_code == 1
    assert "No case" in empty.output
    made = runner.invoke(app, ["release", "create", "--project", crowd.project])
    assert made.exit_code == 0, made.output
    assert "Release rel-r1: 3 cases (2 with images)" in made.output
    again = runner.invoke(
        app, ["release", "create", "--project", crowd.project, "--name", "rel-r1"]
    )
    assert again.exit_code == 1
    assert "exists already" in again.output
    listed = runner.invoke(app, ["release", "list"])
    assert "rel-r1  ready  cases 3" in listed.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    refused = runner.invoke(app, ["export", "--release", "rel-r1", "--out", str(busy)])
    assert refused.exit_code == 1
    assert "not an empty folder" in refused.output
    out = tmp_path / "out"
    exported = runner.invoke(app, ["export", "--release", "rel-r1", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest
    missing = runner.invoke(app, ["export", "--release", "nope", "--out", str(tmp_path / "n")])
    assert missing.exit_code == 1
    assert "No release 'nope'" in missing.output
