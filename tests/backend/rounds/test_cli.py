"""``mscrowd round`` on the embedded default: start, status, close, and clear errors."""

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from backend.cli import app
from backend.core.config import get_settings
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from tests.factories import create_project, create_tasks


@pytest.mark.usefixtures("settings_env")
def test_round_commands() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:
        project = create_project(session, name="al")
        create_tasks(session, Storage(settings.storage_url), count=6, project=project)
        session.commit()
    engine.dispose()

    none = runner.invoke(app, ["round", "status", "--project", "al"])
    assert "No round yet" in none.output
    started = runner.invoke(
        app, ["round", "start", "--project", "al", "--strategy", "random", "--budget", "3"]
    )
    assert started.exit_code == 0, started.output
    assert "Round 1 started: 3 slices chosen by random." in started.output
    status = runner.invoke(app, ["round", "status", "--project", "al"])
    assert "Round 1: labelling, 0 of 3 chosen slices labelled (random, 3 slices)" in status.output
    # None of the 3 chosen slices is labelled: closing needs --force.
    early = runner.invoke(app, ["round", "close", "--project", "al"])
    assert early.exit_code == 1
    assert "Only 0 of round 1's 3 chosen slices are labelled; closing needs 2" in early.output
    closed = runner.invoke(app, ["round", "close", "--project", "al", "--force"])
    assert closed.exit_code == 0, closed.output
    status = runner.invoke(app, ["round", "status", "--project", "al"])
    assert "Round 1: fusing, 0 %" in status.output
    running = runner.invoke(app, ["round", "resume", "--project", "al"])
    assert running.exit_code == 1
    assert "job is running" in running.output

    for args, message in (
        (["round", "start", "--project", "nope"], "No project called 'nope'"),
        (["round", "start", "--project", "al", "--strategy", "clever"], "--strategy: Value error"),
        (["round", "start", "--project", "al", "--config", "huge"], "--config: Value error"),
        (["round", "start", "--project", "al"], "Round 1 of this project is still fusing"),
        (["worker", "--queues", "gpu", "--device", "tpu"], "--device must be auto, cpu or cuda"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, args
        assert message in result.output, result.output
