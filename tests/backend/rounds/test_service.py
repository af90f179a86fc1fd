"""Rounds without the ML worker: starting one (cold start, priorities, one round at a time,
bad input), the job hand-over (claim, progress, a lost round, failure and resume, stalled
jobs), the pool (held-out cases left out, scores joined by slice), gold refused on held-out
cases, and the API's access rules. On both dialects."""

from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.outbox import OutboxJob
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import gold
from backend.quality.models import GoldSource
from backend.rounds import FUSE_ROUND, TRAIN_ROUND
from backend.rounds import pool as round_pool
from backend.rounds import service as rounds
from backend.rounds.models import Round, RoundStatus
from backend.tasks.models import Task
from tests.factories import PASSWORD, create_project, create_tasks, create_token


def _project(session: Session, storage: Storage, count: int = 12) -> Project:
    project = create_project(session)
    tasks = create_tasks(session, storage, count=count, project=project)
    for n, task in enumerate(tasks):  # candidates on every third slice
        slice_ = session.get_one(Slice, task.slice_id)
        slice_.candidate_fraction = 0.2 if n % 3 == 0 else 0.0
        session.add(slice_)
    session.flush()
    return project


def _outbox(session: Session) -> list[str]:
    return [job.name for job in session.exec(select(OutboxJob).order_by(col(OutboxJob.id)))]


def test_start_chooses_slices_and_puts_them_first(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = _project(session, storage)
        assert project.id is not None
        first = rounds.start_round(
            session, storage, project_id=project.id, strategy="bald", budget=3
        )
        assert (first.number, first.status, first.selected_by) == (
            1,
            RoundStatus.labelling,
            "cold_start",
        )
        assert len(first.selected) == 3
        priority = {
            t.slice_id: t.priority
            for t in session.exec(select(Task).where(Task.project_id == project.id))
        }
        ranked = sorted(priority, key=lambda s: -priority[s])
        assert ranked[:3] == first.selected
        # The others go back to their import priority, below every chosen slice's.
        assert all(priority[s] < round_pool.CHOSEN_BASE for s in ranked[3:])
        with pytest.raises(Conflict, match="Round 1 of this project is still labelling"):
            rounds.start_round(session, storage, project_id=project.id, strategy="random", budget=1)
        with pytest.raises(InvalidInput, match="Unknown strategy 'clever'"):
            rounds.start_round(session, storage, project_id=project.id, strategy="clever", budget=1)
        with pytest.raises(NotFound):
            rounds.start_round(session, storage, project_id=999_999, strategy="random", budget=1)
        with pytest.raises(NotFound):
            rounds.get_round(session, 999_999)

        # None of the 3 chosen slices is labelled: closing needs force. Forced, it queues
        # the fusion job in the same transaction.
        with pytest.raises(rounds.TooFewLabelled, match="Only 0 of round 1's 3 chosen"):
            rounds.close_labelling(session, first.id or 0)
        assert first.status is RoundStatus.labelling
        rounds.close_labelling(session, first.id or 0, force=True)
        assert first.status is RoundStatus.fusing
        assert "closed with 0 of 3 chosen slices labelled" in first.detail
        assert _outbox(session) == [FUSE_ROUND]
        with pytest.raises(rounds.RoundNotLabelling, match="not labelling"):
            rounds.close_labelling(session, first.id or 0, force=True)


def test_random_fg_prefers_candidate_slices(migrated_engine: Engine, storage: Storage) -> None:
    """Over seeds, the cold start draws slices with FLAIR-hyperintense candidates far more
    often than their share of the pool (a third)."""
    with Session(migrated_engine) as session:
        project = _project(session, storage, count=24)
        rows = round_pool.pool_rows(session, project)
    pool = round_pool.build_pool(rows, None)
    candidate = {int(i) for i, f in zip(pool.ids, pool.foreground, strict=True) if f > 0}
    drawn = [rounds.selection.select("cold_start", pool, 4, seed=s) for s in range(20)]
    share = np.mean([slice_id in candidate for chosen in drawn for slice_id in chosen])
    assert share > 0.8


def test_stage_jobs_claim_report_fail_and_resume(migrated_engine: Engine, storage: Storage) -> None:
    with Session(migrated_engine) as session:
        project = _project(session, storage)
        started = rounds.start_round(
            session, storage, project_id=project.id or 0, strategy="random", budget=2
        )
        round_id = started.id or 0
        assert rounds.claim(session, round_id, RoundStatus.fusing) is None  # not fusing yet
        rounds.close_labelling(session, round_id, force=True)
        session.commit()

        token = rounds.claim(session, round_id, RoundStatus.fusing)
        assert token is not None
        session.commit()
        # A second delivery while the first job is alive does nothing.
        assert rounds.claim(session, round_id, RoundStatus.fusing) is None
        with pytest.raises(Conflict, match="job is running"):
            rounds.resume(session, round_id)
        rounds.report(session, round_id, token, 40.0, 12.0, "halfway")
        with pytest.raises(rounds.LostRound):
            rounds.report(session, round_id, "not-the-token", 50.0, None, "x")
        session.commit()
        assert (started.progress, started.eta_seconds, started.detail) == (40.0, 12.0, "halfway")

        # It moves on to training and queues that job.
        rounds.finish_stage(session, round_id, token, "fused")
        assert started.status is RoundStatus.training
        assert started.job_token is None
        assert _outbox(session)[-1] == TRAIN_ROUND
        session.commit()

        # A failure stays on the round until someone resumes it.
        token = rounds.claim(session, round_id, RoundStatus.training)
        assert token is not None
        rounds.fail_stage(session, round_id, token, "training failed: out of memory")
        session.commit()
        assert started.error == "training failed: out of memory"
        assert rounds.stalled(session) == []  # failures wait for a person
        rounds.resume(session, round_id)
        assert started.error is None
        assert _outbox(session)[-1] == TRAIN_ROUND
        session.commit()

        # A job whose worker died: its heartbeat goes stale, another job takes over, and the
        # first one finds out at its next report.
        dead = rounds.claim(session, round_id, RoundStatus.training)
        assert dead is not None
        session.commit()
        assert rounds.stalled(session) == []
        session.execute(
            update(Round)
            .where(col(Round.id) == round_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=rounds.STALE_SECONDS + 1))
        )
        session.commit()
        assert [r.id for r in rounds.stalled(session)] == [round_id]
        alive = rounds.claim(session, round_id, RoundStatus.training)
        assert alive not in (None, dead)
        session.commit()
        with pytest.raises(rounds.LostRound):
            rounds.report(session, round_id, dead, 10.0, None, "still here?")
        with pytest.raises(rounds.LostRound):
            rounds.finish_stage(session, round_id, dead, "done?")


def test_held_out_cases_stay_out_of_the_pool_and_gold(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = _project(session, storage, count=4)
        other = create_tasks(session, storage, count=3, project=project)
        held_case = session.exec(
            select(Case)
            .join(Slice, col(Slice.case_id) == col(Case.id))
            .where(Slice.id == other[0].slice_id)
        ).one()
        project.holdout_cases = [held_case.public_id]
        session.add(project)
        session.flush()
        rows = round_pool.pool_rows(session, project)
        assert len(rows) == 4
        assert held_case.id not in {r.case_id for r in rows}
        with pytest.raises(Conflict, match="held out for evaluating models"):
            gold.set_gold(
                session=session,
                storage=storage,
                slice_id=other[0].slice_id,
                mask=np.zeros((8, 8), np.uint8),
                source=GoldSource.expert,
                expert_id=None,
            )
        # Scores join by slice id; a slice the scores do not cover scores 0.
        ids = np.array([rows[0].slice_id, rows[2].slice_id], dtype=np.int64)
        stored = round_pool.encode_scores(
            ids, {"bald": np.array([0.7, 0.2]), "entropy": np.ones(2)}
        )
        pool = round_pool.build_pool(rows, round_pool.decode_scores(stored))
        assert pool.scores["bald"].tolist() == [0.7, 0.0, 0.2, 0.0]


def test_the_api_is_for_engineers_and_admins(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = _project(session, storage)
        engineer = auth.create_user(session=session, email="ml@example.org", password=PASSWORD)
        engineer.role = UserRole.engineer
        volunteer = auth.create_user(session=session, email="v@example.org", password=PASSWORD)
        session.add(engineer)
        token = {"Authorization": f"Bearer {create_token(session, engineer)}"}
        volunteer_token = {"Authorization": f"Bearer {create_token(session, volunteer)}"}
        project_id = project.id
        session.commit()
    body = {"project_id": project_id, "strategy": "random_fg", "budget": 4, "config": "tiny"}
    assert client.post("/api/rounds", json=body, headers=volunteer_token).status_code == 403
    started = client.post("/api/rounds", json=body, headers=token)
    assert started.status_code == 201, started.text
    read = started.json()
    assert (read["number"], read["status"], read["selected"], read["labelled"]) == (
        1,
        "labelling",
        4,
        0,
    )
    again = client.post("/api/rounds", json=body, headers=token)
    assert again.status_code == 409
    assert "still labelling" in again.json()["detail"]
    for bad in ({"strategy": "clever"}, {"budget": 0}, {"config": "huge"}, {"minutes": -1}):
        refused = client.post("/api/rounds", json=body | bad, headers=token)
        assert refused.status_code == 422, bad
    listed = client.get(f"/api/rounds?project_id={project_id}", headers=token)
    assert [r["number"] for r in listed.json()] == [1]
    close = f"/api/rounds/{read['id']}/close"
    assert client.post(close, headers=token).status_code == 409  # 0 of 4 labelled
    closed = client.post(close, json={"force": True}, headers=token)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "fusing"
    assert client.post(close, json={"force": True}, headers=token).status_code == 409
    assert client.post(f"/api/rounds/{read['id']}/resume", headers=token).status_code == 409
    assert client.get(f"/api/rounds/curve?project_id={project_id}", headers=token).json() == []
    assert client.get("/api/rounds/999999", headers=token).status_code == 404
    assert client.get("/api/rounds?project_id=999999", headers=token).status_code == 404
    assert client.get("/rounds").status_code == 200
    with Session(migrated_engine) as session:
        assert session.exec(select(func.count()).select_from(Round)).one() == 1
