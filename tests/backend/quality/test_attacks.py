"""Quality control attacked the way a determined crowd would: a second account that farms the
gold a first one noted down, suspended raters who keep their leases, a bot that sends no
timing, and the fused labels and training data an excluded rater must leave.

Everything goes through the HTTP API (TestClient) on PostgreSQL, as volunteers would; the
jobs that run after commit (fusion, consensus, re-fusion) are called directly, in the order
the worker would run them.
"""

import hashlib
import io
import random
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.annotations.masks import RleMask, encode_rle
from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.outbox import OutboxJob
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import service as fusion
from backend.fusion.consensus import score_consensus
from backend.fusion.models import FusionResult
from backend.quality import consistency
from backend.quality import gold as gold_versions
from backend.quality import service as quality
from backend.quality.jobs import refill_after
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.quality.service import REFILL_GOLD
from backend.tasks import service as tasks
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState
from ml.jobs import training_labels
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.backend.quality.test_hidden_gold import _kind_and_index
from tests.factories import PASSWORD, create_project, set_role, signup, submit


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """The gold draw runs in this process (TestClient): a fixed seed, so a probe meets the
    same gold on every run, whatever ran before it."""
    random.seed(34)


POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
SIZE = (16, 24)


def _masks(n: int) -> list[np.ndarray]:
    """Slices with one lesion each (a few empty ones), at varied places and sizes."""
    rng = np.random.default_rng(7)
    masks = []
    for k in range(n):
        mask = np.zeros(SIZE, dtype=bool)
        if k % 6 != 5:
            y, x = rng.integers(2, 9), rng.integers(2, 15)
            h, w = rng.integers(3, 6), rng.integers(3, 7)
            mask[y : y + h, x : x + w] = True
        masks.append(mask)
    return masks


MASKS = _masks(60)


def _seed(engine: Engine, storage: Storage, **settings: Any) -> tuple[int, list[int]]:
    """A project with 12 gold slices among 60, the rest crowd tasks needing 3 answers."""
    with Session(engine) as session:
        defaults = {"min_labels": 3, "gold_rate": 0.4, "gold_schedule": [], "gold_reveals": 1000}
        project = create_project(session, **{**defaults, **settings})
        slices = create_case(session, storage, project, MASKS)
        gold = slices[2::5]
        for s in gold:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, [s for s in slices if s not in gold])
        session.commit()
        return project.id or 0, [s.id or 0 for s in gold]


def _slice_of(engine: Engine, lease_id: int) -> tuple[TaskKind, int, int]:
    """What the server knows and the client must not: the lease's kind, slice id and index."""
    kind, index, slice_id = _kind_and_index(engine, lease_id)
    return kind, slice_id, index


def _answer(client: TestClient, lease_id: int, mask: np.ndarray) -> Any:
    body = {
        "mask": {
            "encoding": "rle",
            "width": SIZE[1],
            "height": SIZE[0],
            "counts": encode_rle(mask.astype(np.uint8)),
        }
    }
    return client.post(f"/api/tasks/{lease_id}/annotations", json=body)


def _fuse_completed(engine: Engine, storage: Storage, done: set[int]) -> None:
    """What the worker does after each completing submission: fuse the task, then score its
    answers against the fused label (which may flag a rater)."""
    with Session(engine) as session:
        complete = session.exec(
            select(Task.id).where(
                Task.kind == TaskKind.normal,
                col(Task.state).in_([TaskState.complete, TaskState.review]),
            )
        ).all()
        for task_id in complete:
            if task_id in done or task_id is None:
                continue
            fusion.fuse_task(session=session, storage=storage, task_id=task_id)
            score_consensus(session=session, storage=storage, task_id=task_id)
            done.add(task_id)
        session.commit()


def _honest(client: TestClient, engine: Engine, answers: int) -> None:
    """A careful volunteer: paints each slice's lesion."""
    for _ in range(answers):
        task = client.post("/api/tasks/next")
        if task.status_code == 204:
            return
        _kind, _slice, index = _slice_of(engine, task.json()["id"])
        assert _answer(client, task.json()["id"], MASKS[index]).status_code == 201


def _user_id(engine: Engine, email: str) -> int:
    with Session(engine) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        return user.id or 0


def _notes_of_first_account(client: TestClient, engine: Engine) -> dict[str, Any]:
    """Account A answers honestly and notes every gold image it met: the file's hash, its
    decoded pixels' hash, and the answer key its feedback gave away."""
    notes: dict[str, Any] = {"files": {}, "pixels": {}, "gold_slices": set()}
    for _ in range(30):
        task = client.post("/api/tasks/next").json()
        image = client.get(task["slice"]["images"]["flair"]).content
        kind, slice_id, index = _slice_of(engine, task["id"])
        sent = _answer(client, task["id"], MASKS[index])
        assert sent.status_code == 201
        feedback = sent.json()["feedback"]
        if feedback is not None:
            # The farmer keeps what feedback reveals: the overlay shows hits and misses.
            overlay = client.get(feedback["overlay_url"])
            assert overlay.status_code == 200
            key = MASKS[index]
            notes["files"][hashlib.sha256(image).hexdigest()] = key
            notes["pixels"][_pixels(image)] = key
            notes["gold_slices"].add(slice_id)
    assert notes["gold_slices"], "account A met no gold: the probe proves nothing"
    return notes


def _pixels(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as image:
        return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def _farm(
    client: TestClient,
    engine: Engine,
    storage: Storage,
    recognise: Callable[[bytes], np.ndarray | None],
    noted: set[int],
    *,
    limit: int = 50,
) -> dict[str, Any]:
    """Account B: answers gold it recognises with the noted key and everything else "no
    lesion", fusing what its answers complete; stops when paused or flagged."""
    email = "farmer-b@example.org"
    signup(client, email)
    user_id = _user_id(engine, email)
    done: set[int] = set()
    run: dict[str, Any] = {"answers": 0, "recognised": 0, "met_noted_gold": 0, "paused": False}
    for _ in range(limit):
        task = client.post("/api/tasks/next")
        if task.status_code == 403:
            assert task.json()["code"] == "rater_suspended"
            run["paused"] = True
            break
        assert task.status_code == 200, task.text
        lease = task.json()
        image = client.get(lease["slice"]["images"]["flair"]).content
        kind, slice_id, _index = _slice_of(engine, lease["id"])
        key = recognise(image)
        run["recognised"] += key is not None
        run["met_noted_gold"] += kind is TaskKind.gold and slice_id in noted
        sent = _answer(client, lease["id"], key if key is not None else np.zeros(SIZE, bool))
        if sent.status_code == 403:
            run["paused"] = True
            break
        assert sent.status_code == 201, sent.text
        run["answers"] += 1
        _fuse_completed(engine, storage, done)
        with Session(engine) as session:
            stats = session.exec(select(RaterStats).where(RaterStats.user_id == user_id)).one()
            if stats.trust is TrustLevel.suspended:
                run["paused"] = True
                break
            if stats.flagged_reason is not None:
                run["flagged"] = stats.flagged_reason
                break
    run["user_id"] = user_id
    return run


def _assert_labels_gone(engine: Engine, storage: Storage, project_id: int, user_id: int) -> None:
    """After the re-fusion job: no task's newest fused version carries the rater, and the
    training data the ML worker would read holds none of their labels."""
    with Session(engine) as session:
        fusion.refuse_rater(
            session=session, storage=storage, project_id=project_id, user_id=user_id
        )
        session.commit()
    with Session(engine) as session:
        newest: dict[int, FusionResult] = {}
        for result in session.exec(select(FusionResult).order_by(col(FusionResult.version))):
            newest[result.task_id] = result
        assert newest, "nothing was fused: the probe proves nothing"
        carrying = [r.task_id for r in newest.values() if user_id in r.raters]
        assert carrying == []
        used = {label.result_id for label in training_labels(session, project_id)}
        trained_on = [r for r in newest.values() if r.id in used]
        assert trained_on, "training would read nothing: the probe proves nothing"
        assert all(user_id not in r.raters for r in trained_on)
        assert all(r.id in used or r.withdrawn or user_id not in r.raters for r in trained_on)


def _crowd_and_first_account(
    client: TestClient, engine: Engine, storage: Storage
) -> tuple[int, dict[str, Any]]:
    """Two honest volunteers label most of the project; then account A takes its notes."""
    project_id, _gold = _seed(engine, storage)
    for name in ("honest-1", "honest-2"):
        signup(client, f"{name}@example.org")
        _honest(client, engine, 45)
    signup(client, "account-a@example.org")
    return project_id, _notes_of_first_account(client, engine)


@POSTGRES
def test_a_second_account_recognises_no_gold_by_hash_and_careless_farming_is_caught(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, notes = _crowd_and_first_account(client, migrated_engine, storage)
    run = _farm(
        client,
        migrated_engine,
        storage,
        lambda image: notes["files"].get(hashlib.sha256(image).hexdigest()),
        notes["gold_slices"],
    )
    # Every file is lease-specific: nothing A noted is recognised from its bytes, although
    # B met gold slices A had noted.
    assert run["met_noted_gold"] > 0
    assert run["recognised"] == 0
    # Answering "no lesion" everywhere, B is stopped well within 50 answers.
    assert run["paused"] or run.get("flagged"), run
    assert run["answers"] < 50
    _assert_labels_gone(migrated_engine, storage, project_id, run["user_id"])


@POSTGRES
def test_a_farmer_who_recognises_every_gold_by_its_pixels_is_flagged_by_the_crowd(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    """Defence in depth: pixels cannot be hidden from a client that must show them, so a
    farmer who hashes decoded pixels recognises gold. Perfect gold and "no lesion" elsewhere
    then disagree with the crowd's fused labels, which flags B and takes its labels out."""
    project_id, notes = _crowd_and_first_account(client, migrated_engine, storage)
    run = _farm(
        client,
        migrated_engine,
        storage,
        lambda image: notes["pixels"].get(_pixels(image)),
        notes["gold_slices"],
    )
    assert run["recognised"] >= 3  # the attack works on gold...
    assert run.get("flagged"), run  # ...and is caught by the consistency check
    assert "agree with the crowd" in run["flagged"]
    assert run["answers"] < 50
    with Session(migrated_engine) as session:
        stats = session.exec(select(RaterStats).where(RaterStats.user_id == run["user_id"])).one()
        # Gold alone would have called B excellent.
        assert stats.trust is not TrustLevel.suspended
        assert quality.rater_priors(session, project_id)[run["user_id"]].excluded
    _assert_labels_gone(migrated_engine, storage, project_id, run["user_id"])
    # An expert who clears B lets its labels back in; the check then judges only what B
    # answers from now on (the evidence that flagged it is not counted twice).
    with Session(migrated_engine) as session:
        consistency.clear_flag(
            session,
            project_id=project_id,
            user_id=run["user_id"],
            expert_id=run["user_id"],
            reason="talked to them",
        )
        assert not quality.rater_priors(session, project_id)[run["user_id"]].excluded
        now = utcnow()
        assert not consistency.judge(
            session, project_id=project_id, user_id=run["user_id"], now=now
        )
        session.commit()


def _volunteer_with_two_leases(client: TestClient) -> tuple[int, int]:
    signup(client, "held@example.org")
    # One answer first, so the rater has a record to suspend.
    answered = client.post("/api/tasks/next").json()["id"]
    assert _answer(client, answered, np.zeros(SIZE, bool)).status_code == 201
    first = client.post("/api/tasks/next").json()["id"]
    second = client.post(f"/api/tasks/next?after={first}").json()["id"]
    assert first != second
    return first, second


@POSTGRES
def test_a_suspension_ends_held_and_prefetched_leases_at_once(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, gold_rate=0.0)
    first, second = _volunteer_with_two_leases(client)
    image = client.get(f"/api/tasks/{first}/images/0/flair.png")
    assert image.status_code == 200
    user_id = _user_id(migrated_engine, "held@example.org")
    with Session(migrated_engine) as session:
        project_id = session.exec(select(Task.project_id)).first()
        assert project_id is not None
        expert = session.exec(select(User).where(User.id == user_id)).one()
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=user_id,
            suspend=True,
            reason="painting the skull",
            expert_id=expert.id or 0,
        )
        session.commit()
    for lease in (first, second):  # held, and prefetched
        refused = _answer(client, lease, np.zeros(SIZE, bool))
        assert refused.status_code == 403
        assert refused.json()["code"] == "rater_suspended"
        assert client.get(f"/api/tasks/{lease}/images/0/flair.png").status_code == 404
    paused = client.post("/api/tasks/next")
    assert paused.status_code == 403
    assert paused.json()["code"] == "rater_suspended"
    assert "painting the skull" in paused.json()["detail"]
    with Session(migrated_engine) as session:
        lease = session.get(Assignment, second)
        assert lease is not None
        assert lease.state is AssignmentState.skipped
        task = session.get(Task, lease.task_id)
        assert task is not None
        assert task.full_until is None  # the slot is someone else's at once


@POSTGRES
def test_a_bot_without_timing_is_caught_by_the_server_clock_and_reinstatement_is_no_immunity(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, _ = _seed(migrated_engine, storage, gold_rate=0.0, fast_ms=1500, min_gold=5)
    signup(client, "bot@example.org")
    user_id = _user_id(migrated_engine, "bot@example.org")

    def answer_until_paused(limit: int) -> int:
        for n in range(limit):
            task = client.post("/api/tasks/next")
            if task.status_code == 403:
                assert task.json()["code"] == "rater_suspended"
                # The kind of problem, never the thresholds or counts a cheater could tune to.
                assert "faster than a careful look" in task.json()["detail"]
                assert not re.search(r"\d", task.json()["detail"])
                return n
            # No duration_ms at all: the server's own clock times the answer.
            assert _answer(client, task.json()["id"], MASKS[0]).status_code == 201
        return limit

    assert answer_until_paused(12) == 5
    with Session(migrated_engine) as session:
        stats = session.exec(select(RaterStats).where(RaterStats.user_id == user_id)).one()
        assert (stats.timed, stats.fast, stats.answered) == (5, 5, 5)
        assert "took under 1.5 s" in (stats.suspended_reason or "")
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=user_id,
            suspend=False,
            reason="second chance",
            expert_id=user_id,
        )
        session.commit()
    # A fresh window of evidence, not immunity: the same behaviour is caught again.
    assert answer_until_paused(12) == 5


def test_an_expired_lease_comes_back_under_a_new_id_whatever_its_kind(
    migrated_engine: Engine, storage: Storage
) -> None:
    """Letting leases lapse and answering only those that come back must not sort gold from
    normal: both kinds come back, first, and never under the id they had."""
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=3, gold_rate=0.5, gold_schedule=[])
        slices = create_case(session, storage, project, MASKS[:8])
        for s in slices[:4]:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, slices[4:])
        (user,) = [auth.create_user(session=session, email="lapse@example.org", password=PASSWORD)]
        now = utcnow()
        came_back = {TaskKind.gold: 0, TaskKind.normal: 0}
        for draw in (0.0, 0.99, 0.0, 0.99):  # gold, normal, gold, normal
            lease = tasks.next_task(
                session=session, user=user, lease_seconds=60, now=now, draw=draw
            )
            assert lease is not None
            now += timedelta(seconds=61)  # it lapses
            again = tasks.next_task(session=session, user=user, lease_seconds=60, now=now)
            assert again is not None
            assert again.task.id == lease.task.id
            assert again.id != lease.id
            came_back[lease.task.kind] += 1
            submit(session, storage, user, again, now=now)
        assert came_back == {TaskKind.gold: 2, TaskKind.normal: 2}


def test_a_late_answer_to_gold_is_accepted_while_someone_else_holds_it(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        (slice_,) = create_case(session, storage, project, MASKS[:1])
        gold_versions.approve_reference(
            session=session, storage=storage, slice_id=slice_.id or 0, expert_id=None
        )
        first, second = (
            auth.create_user(session=session, email=f"{n}@example.org", password=PASSWORD)
            for n in ("late", "other")
        )
        now = utcnow()
        late = tasks.next_task(session=session, user=first, lease_seconds=60, now=now)
        assert late is not None
        now += timedelta(seconds=120)
        other = tasks.next_task(session=session, user=second, lease_seconds=60, now=now)
        assert other is not None
        assert other.task.id == late.task.id
        # A 409 here ("given to someone else") would tell gold from a crowd task.
        stored = submit(session, storage, first, late, now=now)
        assert stored.feedback is not None


def test_gold_is_rested_after_enough_reveals_and_the_pool_refilled_once(
    migrated_engine: Engine, storage: Storage
) -> None:
    """Feedback shows the expert's outline: after ``gold_reveals`` volunteers saw it, the
    slice stops being gold and a fresh candidate takes its place (once, however often the
    job runs)."""
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[], gold_reveals=2)
        slices = create_case(session, storage, project, MASKS[:12])
        gold_versions.approve_reference(
            session=session, storage=storage, slice_id=slices[0].id or 0, expert_id=None
        )
        users = [
            auth.create_user(session=session, email=f"r{n}@example.org", password=PASSWORD)
            for n in range(3)
        ]
        for user in users[:2]:
            lease = tasks.next_task(session=session, user=user, lease_seconds=60)
            assert lease is not None
            assert lease.task.slice_id == slices[0].id
            submit(session, storage, user, lease, mask=_rle_of(MASKS[0]))
        gold_task = session.exec(select(Task).where(Task.kind == TaskKind.gold)).one()
        assert gold_task.state is TaskState.retired
        jobs = session.exec(select(OutboxJob).where(OutboxJob.name == REFILL_GOLD)).all()
        assert [job.args for job in jobs] == [[project.id, slices[0].id]]
        added = refill_after(session, storage, project.id or 0, slices[0].id or 0)
        assert added is not None
        assert added != slices[0].id
        assert refill_after(session, storage, project.id or 0, slices[0].id or 0) is None
        # The third volunteer meets the new gold slice, never the rested one.
        lease = tasks.next_task(session=session, user=users[2], lease_seconds=60)
        assert lease is not None
        assert lease.task.slice_id == added


def _rle_of(mask: np.ndarray) -> RleMask:
    h, w = mask.shape
    return RleMask(encoding="rle", width=w, height=h, counts=encode_rle(mask.astype(np.uint8)))


def test_a_rater_still_new_after_twice_min_gold_answers_gets_gold_until_judged(
    migrated_engine: Engine, storage: Storage
) -> None:
    """The trust gate: without it a project with a low gold rate lets an unjudged rater give
    the crowd answer after answer."""
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=0.0, gold_schedule=[], min_gold=2)
        slices = create_case(session, storage, project, MASKS[:12])
        for s in slices[:3]:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, slices[3:])
        user = auth.create_user(session=session, email="new@example.org", password=PASSWORD)
        kinds = []
        for _ in range(7):
            lease = tasks.next_task(session=session, user=user, lease_seconds=60)
            assert lease is not None
            kinds.append(lease.task.kind)
            index = next(i for i, s in enumerate(slices) if s.id == lease.task.slice_id)
            submit(session, storage, user, lease, mask=_rle_of(MASKS[index]))
        normal, gold = TaskKind.normal, TaskKind.gold
        # 4 = 2 x min_gold crowd answers, then gold until min_gold gold answers, then crowd.
        assert kinds == [normal] * 4 + [gold, gold] + [normal]


def test_volunteers_are_not_told_the_quality_settings(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, holdout_cases=["c-held"])
    signup(client, "curious@example.org")
    (seen,) = client.get("/api/projects").json()
    hidden = {"gold_rate", "gold_schedule", "repeat_rate", "repeat_gap", "fast_ms", "min_gold"}
    hidden |= {"min_sensitivity", "min_lesion_ppv", "holdout_cases", "gold_reveals"}
    assert not hidden & set(seen)
    assert "c-held" not in str(seen)
    set_role(migrated_engine, UserRole.expert)
    (staff,) = client.get("/api/projects").json()
    assert hidden <= set(staff)
