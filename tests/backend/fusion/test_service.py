"""Fusing stored answers: project runs pooled over tasks, versions kept, suspended raters and
experts left out, the task job idempotent, the CLI, and the API's access rules."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import ndimage
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.cli import app
from backend.core.config import get_settings
from backend.core.db import transaction
from backend.core.outbox import Relay
from backend.core.storage import Storage
from backend.fusion import FUSE_TASK, adaptive, jobs, labels
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult, FusionRun
from backend.quality import gold, review
from backend.quality import service as quality
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from backend.worker import job_resources
from tests.backend.core.test_outbox import Broker
from tests.backend.quality.test_gold import _mask_rle, _normal_tasks, _square_masks, create_case
from tests.factories import PASSWORD, create_project, create_token, submit

LEASE = 600


def _crowd(
    session: Session, storage: Storage, raters: int = 3
) -> tuple[int, list[int], list[User]]:
    """A project with 4 crowd tasks answered by ``raters`` volunteers (one paints sloppily)
    and one expert; returns (project id, task ids, volunteers)."""
    project = create_project(session, min_labels=raters)
    masks = _square_masks(4)
    slices = create_case(session, storage, project, masks)
    made = _normal_tasks(session, project, slices)
    truth = {s.id: m for s, m in zip(slices, masks, strict=True)}
    # An expert answers first (experts take no slot; their answers are not fused).
    expert = auth.create_user(session=session, email="fx@example.org", password=PASSWORD)
    expert.role = UserRole.expert
    session.add(expert)
    lease = tasks.next_task(session=session, user=expert, lease_seconds=LEASE)
    assert lease is not None
    submit(session, storage, expert, lease, mask=_mask_rle(np.ones((16, 24), dtype=bool)))
    volunteers = [
        auth.create_user(session=session, email=f"f{n}@example.org", password=PASSWORD)
        for n in range(raters)
    ]
    for n, user in enumerate(volunteers):
        while lease := tasks.next_task(session=session, user=user, lease_seconds=LEASE):
            mask = truth[lease.task.slice_id].copy()
            if n == raters - 1:
                mask[0:2, :] = True  # a sloppy stroke along the top
            submit(session, storage, user, lease, mask=_mask_rle(mask))
    session.flush()
    return project.id or 0, [t.id or 0 for t in made], volunteers


def test_project_fusion_makes_versions_and_leaves_out_experts_and_suspended(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project_id, task_ids, volunteers = _crowd(session, storage)
        run = fusion.fuse_project(session=session, storage=storage, project_id=project_id)
        assert run.slices == 4
        assert run.converged
        assert set(run.rater_rates) == {str(v.id) for v in volunteers}  # no expert
        results = session.exec(select(FusionResult)).all()
        assert sorted(r.task_id for r in results) == sorted(task_ids)
        assert all(r.version == 1 and len(r.raters) == 3 for r in results)
        # The sloppy stroke is outvoted; the soft label reads back to 1/255.
        first = labels.results(session, task_ids[0])[0]
        soft = labels.read_soft(storage, first.soft_key)
        assert soft[0:2].max() < 0.5
        assert first.hard_pixels == int((soft >= 0.5).sum())
        # Re-fusing makes version 2 and keeps version 1.
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=volunteers[-1].id or 0,
            suspend=True,
            reason="test",
            expert_id=volunteers[0].id or 0,
        )
        again = fusion.fuse_project(session=session, storage=storage, project_id=project_id)
        assert again.excluded == [volunteers[-1].id]
        versions = labels.results(session, task_ids[0])
        assert [v.version for v in versions] == [2, 1]
        assert len(versions[0].raters) == 2
        assert storage.exists(versions[1].soft_key)
        stats = session.exec(
            select(RaterStats).where(RaterStats.user_id == volunteers[-1].id)
        ).one()
        assert stats.trust is TrustLevel.suspended


def test_task_fusion_reuses_project_rates_and_is_idempotent(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project_id, task_ids, _ = _crowd(session, storage)
        first = fusion.fuse_task(session=session, storage=storage, task_id=task_ids[0])
        assert first is not None
        again = fusion.fuse_task(session=session, storage=storage, task_id=task_ids[0])
        assert again is not None
        assert again.id == first.id  # nothing changed: the same version
        run = fusion.fuse_project(session=session, storage=storage, project_id=project_id)
        after = fusion.fuse_task(session=session, storage=storage, task_id=task_ids[0])
        assert after is not None
        task_run = session.get(FusionRun, after.run_id)
        assert task_run is not None
        assert task_run.rater_rates == {r: run.rater_rates[r] for r in task_run.rater_rates}
        assert fusion.fuse_task(session=session, storage=storage, task_id=after.task_id) == after
        with pytest.raises(Exception, match="does not exist"):
            fusion.fuse_task(session=session, storage=storage, task_id=999_999)


def test_jobs_and_cli_fuse_a_project(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    settings = get_settings()
    job_resources.cache_clear()
    engine, storage, _relay = job_resources()
    with Session(engine) as session:
        project_id, task_ids, _ = _crowd(session, storage)
        session.commit()
    run_id = jobs.fuse_project(project_id)
    assert jobs.fuse_task(task_ids[0]) is not None
    assert jobs.fuse_task(task_ids[0]) == jobs.fuse_task(task_ids[0])  # idempotent
    with Session(engine) as session:
        name = session.exec(select(FusionRun).where(FusionRun.id == run_id)).one().project_id
        from backend.projects.models import Project

        project = session.get(Project, name)
        assert project is not None
        project_name = project.name
    result = runner.invoke(app, ["fuse", "--project", project_name])
    assert result.exit_code == 0, result.output
    assert "Fused 4 task(s)" in result.output
    assert "Adaptive redundancy (3 to 7 labels):" in result.output
    missing = runner.invoke(app, ["fuse", "--project", "nope"])
    assert missing.exit_code == 1
    assert "No project called 'nope'" in missing.output
    job_resources.cache_clear()
    engine.dispose()
    assert settings.storage_url


def test_api_serves_fused_labels_to_engineers_and_experts(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project_id, task_ids, volunteers = _crowd(session, storage)
        fusion.fuse_project(session=session, storage=storage, project_id=project_id)
        engineer = auth.create_user(session=session, email="ml@example.org", password=PASSWORD)
        engineer.role = UserRole.engineer
        session.add(engineer)
        token = {"Authorization": f"Bearer {create_token(session, engineer)}"}
        volunteer_token = {"Authorization": f"Bearer {create_token(session, volunteers[0])}"}
        session.commit()
    read = client.get(f"/api/fusion/tasks/{task_ids[0]}", headers=token)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["versions"] == [1]
    assert len(body["raters"]) == 3
    assert body["answer_mask_urls"] is None  # experts only
    soft = client.get(body["soft_url"], headers=token)
    hard = client.get(body["hard_url"], headers=token)
    assert soft.status_code == hard.status_code == 200
    assert (
        client.get(f"/api/fusion/tasks/{task_ids[0]}", headers=volunteer_token).status_code == 403
    )
    missing = client.get(f"/api/fusion/tasks/{task_ids[0]}?version=9", headers=token)
    assert missing.status_code == 404
    summary = client.get(f"/api/fusion/projects/{project_id}/redundancy", headers=token)
    assert summary.status_code == 200, summary.text
    assert summary.json()["min_labels"] == 3
    assert summary.json()["max_labels"] == 7
    assert summary.json()["retired"] + summary.json()["open"] == 4
    assert client.get("/api/fusion/projects/999999/redundancy", headers=token).status_code == 404


def _answer(
    engine: Engine, storage: Storage, relay: Relay, user: User, mask: np.ndarray
) -> int | None:
    """``user`` leases the next task and answers it with ``mask`` in one committed
    transaction, as the API does; the task id, or None when there was none."""
    with transaction(engine, relay) as session:
        lease = tasks.next_task(session=session, user=user, lease_seconds=LEASE)
        if lease is None:
            return None
        submit(session, storage, user, lease, mask=_mask_rle(mask))
        return lease.task.id


def test_completing_a_task_fuses_it_after_the_commit_and_applies_adaptive_redundancy(
    migrated_engine: Engine, storage: Storage
) -> None:
    with transaction(migrated_engine) as session:
        project = create_project(session, min_labels=3, max_labels=5, max_uncertainty=0.2)
        (truth,) = _square_masks(1)
        (slice_,) = create_case(session, storage, project, [truth])
        (task,) = _normal_tasks(session, project, [slice_])
        users = [
            auth.create_user(session=session, email=f"a{n}@example.org", password=PASSWORD)
            for n in range(6)
        ]
        project_id, task_id = project.id or 0, task.id or 0
    broker = Broker()
    relay = Relay(migrated_engine, broker)
    # Three volunteers who each see a different lesion: the fused label is uncertain.
    elsewhere = np.roll(truth, 8, axis=1)
    disputed = [truth, elsewhere, np.zeros_like(truth)]
    for n, mask in enumerate(disputed):
        assert broker.sent == []  # nothing until the answer that completes the task
        assert _answer(migrated_engine, storage, relay, users[n], mask) == task_id
    assert broker.sent == [(FUSE_TASK, [task_id])]

    def run_job() -> tuple[Task, FusionResult | None]:
        """What the worker does with the job the broker got."""
        with transaction(migrated_engine, relay) as session:
            result = fusion.fuse_task(session=session, storage=storage, task_id=task_id)
        with Session(migrated_engine) as session:
            return session.get_one(Task, task_id), result

    state, result = run_job()
    assert result is not None
    assert result.decision == "extend"
    assert (state.state, state.required_labels) == (TaskState.open, 4)
    assert run_job()[1] == result  # idempotent: the same version, and the task stays open
    # A fourth answer completes it again; still disputed: one more, up to max_labels = 5.
    assert _answer(migrated_engine, storage, relay, users[3], elsewhere) == task_id
    state, result = run_job()
    assert result is not None
    assert (result.version, result.decision) == (2, "extend")
    assert _answer(migrated_engine, storage, relay, users[4], truth) == task_id
    assert broker.sent == [(FUSE_TASK, [task_id])] * 3
    state, result = run_job()
    assert result is not None
    assert (result.version, result.decision) == (3, "escalate")
    assert state.state is TaskState.review
    assert _answer(migrated_engine, storage, relay, users[5], truth) is None  # no more labels
    assert run_job()[0].state is TaskState.review  # run twice: still for the experts
    with Session(migrated_engine) as session:
        (item, *_) = review.review_queue(
            session=session, storage=storage, project_id=project_id, limit=5
        )
        assert (item.task_id, item.escalated) == (task_id, True)
        summary = adaptive.redundancy_summary(session, project_id)
        assert (summary.retired, summary.open, summary.in_review) == (0, 0, 1)


def test_agreeing_answers_retire_the_task_and_suspended_raters_do_not_count(
    migrated_engine: Engine, storage: Storage
) -> None:
    with transaction(migrated_engine) as session:
        project = create_project(session, min_labels=3, max_labels=7)
        masks = _square_masks(2)
        slices = create_case(session, storage, project, masks)
        made = _normal_tasks(session, project, slices)
        users = [
            auth.create_user(session=session, email=f"b{n}@example.org", password=PASSWORD)
            for n in range(4)
        ]
        project_id = project.id or 0
    broker = Broker()
    relay = Relay(migrated_engine, broker)
    truth = dict(zip([s.id for s in slices], masks, strict=True))
    for user in users[:3]:
        for _ in made:
            with transaction(migrated_engine, relay) as session:
                lease = tasks.next_task(session=session, user=user, lease_seconds=LEASE)
                assert lease is not None
                submit(session, storage, user, lease, mask=_mask_rle(truth[lease.task.slice_id]))
    assert sorted(args[0] for _, args in broker.sent) == sorted(t.id for t in made)
    with transaction(migrated_engine) as session:
        result = fusion.fuse_task(session=session, storage=storage, task_id=made[0].id or 0)
        assert result is not None
        assert result.decision == "retire"
        assert session.get_one(Task, made[0].id).state is TaskState.complete
        # One of the three is suspended: two labels count, so the other task waits for one.
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=users[2].id or 0,
            suspend=True,
            reason="test",
            expert_id=users[0].id or 0,
        )
    with transaction(migrated_engine) as session:
        result = fusion.fuse_task(session=session, storage=storage, task_id=made[1].id or 0)
        assert result is not None
        assert result.decision == "wait"
        reopened = session.get_one(Task, made[1].id)
        assert (reopened.state, reopened.required_labels) == (TaskState.open, 4)
    with Session(migrated_engine) as session:
        summary = adaptive.redundancy_summary(session, project_id)
    assert (summary.retired, summary.labels_per_retired) == (1, 3.0)
    assert (summary.open, summary.asking_for_more, summary.in_review) == (1, 1, 0)
    assert _answer(migrated_engine, storage, relay, users[3], masks[1]) == made[1].id


def test_the_projects_gold_chooses_the_outline_rule(
    migrated_engine: Engine, storage: Storage
) -> None:
    with transaction(migrated_engine) as session:
        project = create_project(session, min_labels=3, gold_rate=1.0, gold_schedule=[])
        masks = _square_masks(8)
        slices = create_case(session, storage, project, masks)
        truth = {s.id: m for s, m in zip(slices, masks, strict=True)}
        for slice_ in slices[:5]:  # five gold slices (their reference masks), three crowd
            gold.approve_reference(
                session=session, storage=storage, slice_id=slice_.id or 0, expert_id=None
            )
        made = _normal_tasks(session, project, slices[5:])
        users = [
            auth.create_user(session=session, email=f"g{n}@example.org", password=PASSWORD)
            for n in range(3)
        ]
        for n, user in enumerate(users):  # gold first (gold_rate 1), then the crowd tasks
            while lease := tasks.next_task(session=session, user=user, lease_seconds=LEASE):
                mask = truth[lease.task.slice_id].copy()
                if n == 2:
                    mask = ndimage.binary_dilation(mask)  # a generous outliner
                submit(session, storage, user, lease, mask=_mask_rle(mask))
        run = fusion.fuse_project(session=session, storage=storage, project_id=project.id or 0)
        assert set(run.outline_scores) == {"staple", "majority"}
        best = max(run.outline_scores, key=lambda rule: run.outline_scores[rule])
        assert run.outline_scores["majority"] == pytest.approx(1.0)  # two of three agree
        assert run.method == f"crowd_staple/{best}"
        # A task fused on its own follows the project's rule.
        again = fusion.fuse_task(session=session, storage=storage, task_id=made[0].id or 0)
        assert again is not None
        assert session.get_one(FusionRun, again.run_id).method == run.method
