"""``mscrowd tutorials``: checking the lessons, setting a demo case aside as material."""

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.cli import app
from backend.core.config import get_settings
from backend.core.db import create_db_engine
from backend.imaging.models import Case, Slice
from backend.quality.models import GoldVersion
from backend.tasks.models import Task, TaskKind, TaskState
from backend.tutorials.models import MaterialKind, TutorialSlice

runner = CliRunner()


def test_check_validates_the_lessons() -> None:
    result = runner.invoke(app, ["tutorials", "check"])
    assert result.exit_code == 0, result.output
    assert "6 lessons, languages: en" in result.output


def test_a_case_set_aside_leaves_the_crowd_and_its_gold(settings_env: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert (
        runner.invoke(app, ["demo", "--cases", "1", "--seed", "3", "--no-tutorial"]).exit_code == 0
    )
    engine = create_db_engine(get_settings().database_url)
    with Session(engine) as session:
        case = session.exec(select(Case)).one()
    missing = runner.invoke(app, ["tutorials", "use-case", "--project", "demo", "nope"])
    assert missing.exit_code == 1
    assert "No case 'nope'" in missing.output
    result = runner.invoke(app, ["tutorials", "use-case", "--project", "demo", case.public_id])
    assert result.exit_code == 0, result.output
    assert "tutorial material" in result.output
    with Session(engine) as session:
        assert session.exec(select(Case)).one().tutorial
        tasks = session.exec(select(Task)).all()
        assert {t.state for t in tasks} == {TaskState.retired}
        assert all(g.retired_at is not None for g in session.exec(select(GoldVersion)).all())
        kinds = {row.kind for row in session.exec(select(TutorialSlice)).all()}
        assert {MaterialKind.lesion, MaterialKind.empty} <= kinds
        slices = len(session.exec(select(Slice)).all())
        assert len(session.exec(select(TutorialSlice)).all()) <= slices
    back = runner.invoke(
        app, ["tutorials", "use-case", "--project", "demo", "--release", case.public_id]
    )
    assert back.exit_code == 0, back.output
    with Session(engine) as session:
        assert not session.exec(select(Case)).one().tutorial
        assert session.exec(select(TutorialSlice)).all() == []
        normal = [t for t in session.exec(select(Task)).all() if t.kind is TaskKind.normal]
        # Its unanswered crowd tasks reopen (gold slices too: their gold retired with it).
        assert any(t.state is TaskState.open for t in normal)
    engine.dispose()
