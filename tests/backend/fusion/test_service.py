"""Fusing stored answers: project runs pooled over tasks, versions kept, suspended raters and
experts left out, the task job idempotent, the CLI, and the API's access rules."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.cli import app
from backend.core.config import get_settings
from backend.core.storage import Storage
from backend.fusion import jobs
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult, FusionRun
from backend.quality import service as quality
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.tasks import service as tasks
from tests.backend.quality.test_gold import _mask_rle, _normal_tasks, _square_masks, create_case
from tests.factories import PASSWORD, create_project, create_token, submit

LEASE = 600


def _crowd(
    session: Session, storage: Storage, raters: int = 3
) -> tuple[int, list[int], list[User]]:
    """A project with 4 crowd tasks answered by ``raters`` volunteers (one paints sloppily)
    and one expert; returns (project id, task ids, volunteers)."""
    project = create_project(session, redundancy=raters)
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
        first = fusion.results(session, task_ids[0])[0]
        soft = fusion.read_soft(storage, first.soft_key)
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
        versions = fusion.results(session, task_ids[0])
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
    jobs._resources.cache_clear()
    engine, storage = jobs._resources()
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
    missing = runner.invoke(app, ["fuse", "--project", "nope"])
    assert missing.exit_code == 1
    assert "No project called 'nope'" in missing.output
    jobs._resources.cache_clear()
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
