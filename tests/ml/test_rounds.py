"""A whole active-learning round on the CPU, in process: start (cold start), volunteers label
the chosen slices, close, fuse, train (tiny config, one case held out), score the pool by
Monte-Carlo dropout, and the next round's selection on those scores sets the queue's
priorities. The same stage functions run in the ML worker (``ml.jobs``)."""

import numpy as np
import pytest
from sqlmodel import Session, col, select

from backend.auth import service as auth
from backend.core.db import transaction
from backend.imaging.models import Slice
from backend.projects.models import Project
from backend.quality import gold
from backend.rounds import jobs as round_jobs
from backend.rounds import pool as round_pool
from backend.rounds import service as rounds
from backend.rounds.models import ModelStatus, ModelVersion, Round, RoundStatus
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskKind, TaskState
from ml import jobs
from tests.backend.quality.test_gold import _mask_rle
from tests.factories import PASSWORD, submit
from tests.ml.conftest import Setup


def label_chosen(setup: Setup, round_: Round, raters: int = 3) -> None:
    """``raters`` volunteers answer every chosen slice with its reference mask (the queue
    serves the chosen tasks first, in order)."""
    with transaction(setup.engine) as session:
        users = [
            auth.create_user(session=session, email=f"v{n}@example.org", password=PASSWORD)
            for n in range(raters)
        ]
    for user in users:
        for _ in round_.selected:
            with transaction(setup.engine) as session:
                lease = tasks.next_task(session=session, user=user, lease_seconds=600)
                assert lease is not None
                assert lease.task.slice_id in round_.selected  # the chosen slices come first
                slice_ = session.get_one(Slice, lease.task.slice_id)
                assert slice_.reference_key is not None
                truth = gold.read_mask(setup.storage, slice_.reference_key)
                submit(session, setup.storage, user, lease, mask=_mask_rle(truth))


@pytest.mark.postgres
def test_a_round_trains_scores_and_sets_the_next_rounds_priorities(setup: Setup) -> None:
    engine, storage = setup.engine, setup.storage
    with transaction(engine) as session:
        first = rounds.start_round(
            session,
            storage,
            project_id=setup.project_id,
            strategy="bald_diverse",
            budget=4,
            config="tiny",
        )
    # No model yet: a scored strategy starts cold, on FLAIR-hyperintense candidates.
    assert first.status is RoundStatus.labelling
    assert first.selected_by == "cold_start"
    assert len(first.selected) == 4
    with Session(engine) as session:
        held = session.exec(select(Slice.id).join(Task, col(Task.slice_id) == col(Slice.id))).all()
        assert held
        project = session.get_one(Project, setup.project_id)
        pool_cases = {r.case_id for r in round_pool.pool_rows(session, project)}
    assert len(pool_cases) == 1  # the held-out case is never offered for labelling rounds
    label_chosen(setup, first)
    with transaction(engine) as session:
        assert rounds.progress_of_labelling(session, first) == (4, 4)
        rounds.close_labelling(session, first.id or 0)

    assert round_jobs.fuse_round(first.id or 0).startswith("fused")
    assert round_jobs.fuse_round(first.id or 0) == "nothing to do"  # idempotent
    assert "scoring next" in jobs.train_round(first.id or 0)
    assert jobs.train_round(first.id or 0) == "nothing to do"
    assert jobs.score_pool(first.id or 0).startswith("scored")

    with Session(engine) as session:
        done = session.get_one(Round, first.id)
        (version,) = session.exec(select(ModelVersion)).all()
        open_tasks = session.exec(
            select(Task).where(Task.kind == TaskKind.normal, Task.state == TaskState.open)
        ).all()
    assert done.status is RoundStatus.closed
    assert done.progress == 100.0
    assert done.labels_used == 4
    assert version.round_id == done.id
    assert version.status is ModelStatus.promoted  # the first evaluated model
    assert version.snapshot["holdout"] == [setup.cases[-1]]
    assert set(version.snapshot["cases"]) == {setup.cases[0]}  # fused labels of case 1 only
    with Session(engine) as session:
        fused = [f.result_id for f in jobs.training_labels(session, setup.project_id)]
    assert len(fused) == 4
    assert version.snapshot["fused_results"] == fused  # the fused versions it trained on
    assert 0.0 <= version.metrics["dice"] <= 1.0
    assert done.scores_key is not None
    ids, scores = round_pool.decode_scores(storage.get(done.scores_key))
    assert done.scored_slices == len(ids) > 0
    assert set(scores) == {"entropy", "bald", "count_variance"}
    assert np.all(scores["bald"] >= 0)
    assert np.all(scores["entropy"] >= scores["bald"] - 1e-9)  # BALD is part of the entropy
    assert not set(first.selected) & {int(i) for i in ids}  # labelled slices left the pool

    with transaction(engine) as session:
        second = rounds.start_round(
            session, storage, project_id=setup.project_id, strategy="bald_diverse", budget=5
        )
        points = rounds.learning_curve(session, setup.project_id)
    assert second.number == 2
    assert second.selected_by == "bald_diverse"
    assert points[0].labels_used == 4
    assert points[0].dice == version.metrics["dice"]
    # The queue serves the chosen slices first, in the strategy's order; the rest keep their
    # import order (brain share, below 1).
    priority = {t.slice_id: t.priority for t in open_tasks}
    with Session(engine) as session:
        now = {
            t.slice_id: t.priority
            for t in session.exec(select(Task).where(col(Task.slice_id).in_(list(priority))))
        }
    chosen = [now[s] for s in second.selected]
    assert chosen == sorted(chosen, reverse=True)
    assert min(chosen) > 1.0
    assert all(p <= 1.0 for s, p in now.items() if s not in second.selected)
