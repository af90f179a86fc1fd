"""Storage consistent with the database after a crash: orphans found, fixed, young ones kept."""

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from backend.annotations.sweep import check
from backend.auth import service as auth
from backend.cli import app
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.tasks.service import next_task
from tests.factories import PASSWORD, create_tasks, submit


def _age(storage: Storage, key: str, minutes: float) -> None:
    path = Path(storage.root) / key
    then = time.time() - minutes * 60
    os.utime(path, (then, then))


def test_check_finds_and_fixes_orphans_but_spares_young_files(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1)
        user = auth.create_user(session=session, email="s@example.org", password=PASSWORD)
        assert task.id is not None
        lease = next_task(session=session, user=user, lease_seconds=600)
        assert lease is not None
        kept = submit(session, storage, user, lease).annotation.mask_key
        session.commit()
    dead = (
        "annotations/9/1-dead.png",
        "cases/gone/axial/0000/flair.png",
        "feedback/77.png",
        "gold/5/v1.png",
    )
    for key in dead:
        storage.put(key, b"x")
        _age(storage, key, 30)
    storage.put("annotations/9/2-inflight.png", b"x")  # a transaction may still commit it
    with Session(migrated_engine) as session:
        found = check(session=session, storage=storage)
        assert sorted(found.orphans) == sorted(dead)
        assert found.too_young == ["annotations/9/2-inflight.png"]
        assert found.missing == []
        fixed = check(session=session, storage=storage, fix=True)
        assert fixed.deleted == 4
        later = check(session=session, storage=storage, now=utcnow() + timedelta(hours=1))
        assert later.orphans == ["annotations/9/2-inflight.png"]
    assert kept in storage.list("annotations")
    storage.delete(kept)
    with Session(migrated_engine) as session:
        assert check(session=session, storage=storage).missing == [kept]


def test_storage_check_command(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    storage = Storage((tmp_path / "var" / "storage").resolve().as_uri())
    storage.put("annotations/1/1-orphan.png", b"x")
    _age(storage, "annotations/1/1-orphan.png", 60)
    found = runner.invoke(app, ["storage", "check"])
    assert found.exit_code == 1
    assert "orphan annotations/1/1-orphan.png" in found.output
    fixed = runner.invoke(app, ["storage", "check", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert "1 orphan file(s) deleted" in fixed.output
    assert runner.invoke(app, ["storage", "check"]).exit_code == 0
