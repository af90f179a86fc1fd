"""``/api/rewards`` end to end: a volunteer's points after check answers (at once) and crowd
answers (pending, then confirmed by the fusion job's points), the badges that follow, the
leaderboard with their row, settings, and bad input refused with its reason."""

from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from backend.annotations.masks import encode_rle
from backend.auth.models import User
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import service as fusion
from backend.fusion.consensus import score_consensus
from backend.fusion.labels import read_soft
from backend.fusion.models import FusionResult
from backend.gamification import confirm, ledger
from backend.gamification.models import PointEntry, PointReason, PointTotal
from backend.imaging.models import Slice
from backend.projects.models import Project
from backend.quality import gold
from backend.quality.models import RaterStats
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion, Round, RoundStatus
from backend.tasks.models import Assignment, Task, TaskKind, TaskState
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.factories import create_project, signup

# A different square on every slice: the same mask on three slices is copying (no points).
MASKS = []
for _k in range(24):
    _mask = np.zeros((16, 24), dtype=bool)
    _mask[2 + _k % 10 : 6 + _k % 10, 2 + (_k // 10) * 7 : 7 + (_k // 10) * 7] = True
    MASKS.append(_mask)


def _seed(engine: Engine, storage: Storage) -> None:
    with Session(engine) as session:
        # fast_ms=0: the test client answers in milliseconds, which the spam rule would void.
        # Two labels a slice, never more (an uncertain one goes to the experts).
        project = create_project(
            session, min_labels=2, max_labels=2, gold_rate=0.5, gold_schedule=[], fast_ms=0
        )
        slices = create_case(session, storage, project, MASKS)
        for s in slices[2:22:2]:
            gold.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, slices[3:22:2])
        session.commit()


def _answer(client: TestClient, engine: Engine) -> tuple[TaskKind, dict[str, object]] | None:
    """Lease a task and answer it with its slice's square; None when none is left."""
    lease = client.post("/api/tasks/next")
    if lease.status_code == 204:
        return None
    assert lease.status_code == 200, lease.text
    task = lease.json()
    with Session(engine) as session:
        assignment = session.get(Assignment, task["id"])
        assert assignment is not None
        found = session.get(Task, assignment.task_id)
        assert found is not None
        index = session.get(Slice, found.slice_id).index  # type: ignore[union-attr]
        kind = found.kind
    counts = encode_rle(MASKS[index].astype(np.uint8))
    sent = client.post(
        f"/api/tasks/{task['id']}/annotations",
        json={"mask": {"encoding": "rle", "width": 24, "height": 16, "counts": counts}},
    )
    assert sent.status_code == 201, sent.text
    return kind, sent.json()


def test_points_badges_and_the_board(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, client.app.state.storage)  # type: ignore[attr-defined]
    other = TestClient(client.app)
    signup(other, "other@example.org")
    signup(client, "points@example.org")
    start = client.get("/api/rewards/me").json()
    assert (start["total"], start["level"]["name"], start["badges"]) == (0, "Newcomer", [])
    assert len(start["next_badges"]) == 3
    answered: dict[str, list[TaskKind]] = {"me": [], "other": []}
    for who, volunteer in (("me", client), ("other", other)):
        while (done := _answer(volunteer, migrated_engine)) is not None:
            kind, answer = done
            answered[who].append(kind)
            reward = answer["reward"]
            if kind is TaskKind.gold:
                assert (reward["status"], reward["points"]) == ("awarded", 10)  # a perfect outline
            else:
                assert (reward["status"], reward["points"]) == ("pending", 0)
    mine = answered["me"]
    assert TaskKind.gold in mine
    assert TaskKind.normal in mine
    # The crowd tasks (two labels each) are fused; the fusion job's points follow.
    storage = client.app.state.storage  # type: ignore[attr-defined]
    with Session(migrated_engine) as session:
        complete = select(Task.id).where(
            Task.kind == TaskKind.normal, Task.state.in_(["complete", "review"])
        )
        for task_id in session.execute(complete).scalars().all():
            fusion.fuse_task(session=session, storage=storage, task_id=task_id)
            score_consensus(session=session, storage=storage, task_id=task_id)
            confirm.confirm_task(session, task_id, utcnow())
            confirm.confirm_task(session, task_id, utcnow())  # a job sent twice
        session.commit()
        confirmed = session.execute(
            select(func.count())
            .select_from(PointEntry)
            .where(PointEntry.reason == PointReason.confirmed)
        ).scalar_one()
        normal = answered["me"].count(TaskKind.normal) + answered["other"].count(TaskKind.normal)
        assert confirmed == normal
    mine_now = client.get("/api/rewards/me").json()
    badge_ids = {b["id"] for b in mine_now["badges"]}
    assert {"first-label", "sharp-outline"} <= badge_ids
    assert [b["id"] for b in mine_now["new_badges"]] == [b["id"] for b in mine_now["badges"]]
    badge_points = sum(b["points"] for b in mine_now["badges"])
    # Perfect outlines, agreeing volunteers: ten points an answer, and the badges'.
    assert mine_now["total"] == 10 * len(mine) + badge_points
    with Session(migrated_engine) as session:
        totals = session.execute(select(func.sum(PointTotal.total))).scalar_one()
        summed = session.execute(select(func.sum(PointEntry.points))).scalar_one()
        assert totals == summed
    assert mine_now["level"]["number"] >= 2
    assert mine_now["level_up"] is True
    # Points confirmed while away: the crowd answers' ten each, shown once.
    normal_mine = mine.count(TaskKind.normal)
    since = mine_now["since"]
    assert (since["points"], since["answers"]) == (10 * normal_mine, normal_mine)
    # A notice marks what it showed, no more: one badge, not the level, not the points.
    first = mine_now["new_badges"][0]["id"]
    shown = client.post("/api/rewards/me/seen", json={"badges": [first], "level": 0, "through": 0})
    assert shown.status_code == 204
    partly = client.get("/api/rewards/me").json()
    assert first not in {b["id"] for b in partly["new_badges"]}
    assert len(partly["new_badges"]) == len(mine_now["new_badges"]) - 1
    assert (partly["level_up"], partly["since"]) == (True, since)
    bad = client.post("/api/rewards/me/seen", json={"through": -1})
    assert bad.status_code == 422
    assert client.post("/api/rewards/me/seen").status_code == 204
    seen = client.get("/api/rewards/me").json()
    assert (seen["new_badges"], seen["level_up"]) == ([], False)
    assert (seen["since"]["points"], seen["since"]["answers"]) == (0, 0)
    board = client.get("/api/rewards/leaderboard?board=all").json()
    assert board["total"] == 2  # both volunteers' check answers earned at once
    assert [r["points"] for r in board["rows"]] == sorted(
        (r["points"] for r in board["rows"]), reverse=True
    )
    assert board["me"]["points"] == mine_now["total"]
    ahead = sum(r["points"] > mine_now["total"] for r in board["rows"])
    assert board["me"]["rank"] == 1 + ahead
    assert [r["you"] for r in board["rows"]].count(True) == 1
    history = client.get("/api/rewards/me/history").json()
    assert sum(day["points"] for day in history) == mine_now["total"]


def test_bad_input_is_refused_with_its_reason(client: TestClient) -> None:
    assert client.get("/api/rewards/me").status_code == 401
    signup(client, "settings@example.org")
    for zone in ("Mars/Olympus", "UTC+1", ""):
        refused = client.put("/api/rewards/me/settings", json={"time_zone": zone})
        assert refused.status_code == 422, zone
    refused = client.put("/api/rewards/me/settings", json={"time_zone": "Mars/Olympus"})
    assert refused.json()["code"] == "unknown_time_zone"
    fine = client.put(
        "/api/rewards/me/settings", json={"time_zone": "Europe/Berlin", "leaderboard": False}
    )
    assert fine.json() == {"time_zone": "Europe/Berlin", "leaderboard": False}
    assert client.get("/api/rewards/me").json()["time_zone"] == "Europe/Berlin"
    assert client.put("/api/rewards/me/settings", json={"colour": "red"}).status_code == 422
    far = client.get("/api/rewards/leaderboard?board=all&offset=5")
    assert (far.status_code, far.json()["code"]) == (422, "page_out_of_range")
    assert client.get("/api/rewards/leaderboard?board=month").status_code == 422
    assert client.get("/api/rewards/leaderboard?limit=1000").status_code == 422
    assert client.get("/api/rewards/goals?project=nowhere").status_code == 404
    assert client.get("/api/rewards/goals?project=%00").status_code == 422  # never a 500
    # A second change of time zone within the week: refused, with when it may change.
    again = client.put("/api/rewards/me/settings", json={"time_zone": "Asia/Tokyo"})
    assert (again.status_code, again.json()["code"]) == (409, "time_zone_recently_changed")


def test_goals_and_what_the_labels_trained(client: TestClient, migrated_engine: Engine) -> None:
    """The project's goal and its open round's as done of target, and per promoted model of
    a round its held-out Dice against the one before, with the volunteer's share."""
    _seed(migrated_engine, client.app.state.storage)  # type: ignore[attr-defined]
    other = TestClient(client.app)
    signup(other, "goals-other@example.org")
    signup(client, "goals@example.org")
    for volunteer in (client, other):
        while _answer(volunteer, migrated_engine) is not None:
            pass
    now = utcnow()
    with Session(migrated_engine) as session:
        project = session.execute(select(Project)).scalars().one()
        user = session.execute(select(User).where(User.email == "goals@example.org")).scalar_one()
        normal = session.execute(
            select(Task).where(Task.project_id == project.id, Task.kind == TaskKind.normal)
        ).scalars()
        slices = [t.slice_id for t in normal]
        first = Round(
            project_id=project.id or 0,
            number=1,
            status=RoundStatus.closed,
            strategy="random",
            budget=4,
            selected=slices[:4],
        )
        second = Round(
            project_id=project.id or 0,
            number=2,
            status=RoundStatus.open,
            strategy="uncertainty",
            budget=4,
            selected=slices[4:8],
        )
        session.add_all([first, second])
        session.flush()
        # Model v1 trained before the volunteer's labels were fused, v2 after: only v2
        # counts them. A version that was not promoted says nothing.
        versions = [
            (first, 0.61, ModelStatus.promoted, now - timedelta(hours=2)),
            (second, 0.58, ModelStatus.ready, now + timedelta(hours=1)),
            (second, 0.66, ModelStatus.promoted, now + timedelta(hours=2)),
        ]
        for round_, dice, status_, at in versions:
            session.add(
                ModelVersion(
                    project_id=project.id or 0,
                    round_id=round_.id,
                    labels=LabelSource.fused,
                    status=status_,
                    metrics={"dice": dice},
                    created_at=at,
                )
            )
        confirmed = [
            ledger.entry(
                user_id=user.id or 0,
                reason=PointReason.confirmed,
                points=10,
                now=now,
                project_id=project.id,
                annotation_id=9000 + k,
            )
            for k in range(3)
        ]
        ledger.write(session, confirmed)
        session.commit()
        name = project.name
    goals = client.get(f"/api/rewards/goals?project={name}").json()
    assert goals["goal"]["target"] == len(slices)
    assert goals["goal"]["label"] == "slices finished"
    assert goals["labels_per_slice"] == 2
    assert goals["your_answers"] > 0
    assert 0 < goals["goal"]["done"] <= goals["goal"]["target"]
    assert goals["round_number"] == 2
    assert goals["round"]["target"] == 4
    newest, oldest = goals["impact"]
    assert newest.startswith("Labels from round 2 trained model v")
    assert "held-out Dice 0.61 -> 0.66" in newest
    assert newest.endswith("your labels are in 3 fused slices that trained it.")
    assert oldest.endswith("held-out Dice 0.61.")


def test_colluders_agreeing_on_junk_earn_nothing_where_an_expert_drew(
    client: TestClient, migrated_engine: Engine
) -> None:
    """Two accounts send the same junk to every crowd slice (and answer check slices well):
    fusion agrees with them, but each slice has the expert's mask from its import, and
    agreement with the crowd never pays more than agreement with the expert."""
    storage = client.app.state.storage  # type: ignore[attr-defined]
    _seed(migrated_engine, storage)
    junk = np.zeros((16, 24), dtype=bool)
    junk[12:15, 18:22] = True  # where no slice has a lesion
    other = TestClient(client.app)
    signup(other, "colluder-b@example.org")
    signup(client, "colluder-a@example.org")
    for volunteer in (client, other):
        while True:
            lease = volunteer.post("/api/tasks/next")
            if lease.status_code == 204:
                break
            task = lease.json()
            with Session(migrated_engine) as session:
                found = session.get(Task, session.get(Assignment, task["id"]).task_id)  # type: ignore[union-attr]
                index = session.get(Slice, found.slice_id).index  # type: ignore[union-attr]
                kind = found.kind  # type: ignore[union-attr]
            # The same junk from both, a pixel moved per slice (no two masks alike).
            mask = junk.copy()
            mask[15, index % 24] = True
            if kind is TaskKind.gold:
                mask = MASKS[index]
            counts = encode_rle(mask.astype(np.uint8))
            sent = volunteer.post(
                f"/api/tasks/{task['id']}/annotations",
                json={"mask": {"encoding": "rle", "width": 24, "height": 16, "counts": counts}},
            )
            assert sent.status_code == 201, sent.text
    with Session(migrated_engine) as session:
        complete = select(Task.id).where(
            Task.kind == TaskKind.normal, Task.state.in_(["complete", "review"])
        )
        fused = session.execute(complete).scalars().all()
        assert fused
        for task_id in fused:
            fusion.fuse_task(session=session, storage=storage, task_id=task_id)
            score_consensus(session=session, storage=storage, task_id=task_id)
        session.commit()
        # The attack works on the crowd: the fused label is their junk.
        result = (
            session.execute(select(FusionResult).where(FusionResult.task_id == fused[0]))
            .scalars()
            .first()
        )
        assert result is not None
        assert result.soft_key is not None
        assert (read_soft(storage, result.soft_key)[12:15, 18:22] >= 0.5).all()
        for task_id in fused:
            confirm.confirm_task(session, task_id, utcnow(), storage)
        session.commit()
        # Scored against the experts' masks, the colluders' crowd answers are far below their
        # check answers: both are flagged (their labels leave fusion, their points go back).
        flags = session.execute(select(RaterStats.flagged_reason)).scalars().all()
        assert len(flags) == 2
        assert all(flag is not None for flag in flags)
        confirmed = session.execute(
            select(func.coalesce(func.sum(PointEntry.points), 0)).where(
                PointEntry.reason.in_([PointReason.confirmed, PointReason.hard_bonus])
            )
        ).scalar_one()
    assert confirmed == 0


def test_a_slice_the_model_was_unsure_of_earns_the_hard_bonus(
    client: TestClient, migrated_engine: Engine
) -> None:
    """A crowd slice an uncertainty-driven round chose (the model was least sure of it) pays
    the hard-slice bonus on top; a slice a random round chose does not."""
    storage = client.app.state.storage  # type: ignore[attr-defined]
    _seed(migrated_engine, storage)
    other = TestClient(client.app)
    signup(other, "hard-b@example.org")
    signup(client, "hard-a@example.org")
    for volunteer in (client, other):
        while _answer(volunteer, migrated_engine) is not None:
            pass
    with Session(migrated_engine) as session:
        project = session.execute(select(Project)).scalars().one()
        done = (
            session.execute(
                select(Task).where(Task.kind == TaskKind.normal, Task.state == TaskState.complete)
            )
            .scalars()
            .all()
        )
        unsure, plain = done[0], done[1]
        session.add_all([
            Round(project_id=project.id or 0, number=1, status=RoundStatus.closed,
                  strategy="bald", selected_by="bald", budget=1, selected=[unsure.slice_id]),
            Round(project_id=project.id or 0, number=2, status=RoundStatus.open,
                  strategy="random", selected_by="random", budget=1, selected=[plain.slice_id]),
        ])  # fmt: skip
        session.flush()
        unsure_id, plain_id = unsure.id or 0, plain.id or 0
        for task_id in (unsure_id, plain_id):
            fusion.fuse_task(session=session, storage=storage, task_id=task_id)
            score_consensus(session=session, storage=storage, task_id=task_id)
            confirm.confirm_task(session, task_id, utcnow(), storage)
        bonus = (
            session.execute(
                select(PointEntry.task_id).where(PointEntry.reason == PointReason.hard_bonus)
            )
            .scalars()
            .all()
        )
        session.commit()
    assert sorted(bonus) == [unsure_id, unsure_id]  # both volunteers' answers, once each
