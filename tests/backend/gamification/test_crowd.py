"""Scripted volunteers through the HTTP API on PostgreSQL, the issue's acceptance: a careful
rater earns the points, level and badges their answers are worth; a careless fast one earns
clearly fewer points per answer at the same volume; a spammer earns nothing net and leaves the
leaderboard once quality control suspends them.

Each volunteer answers in turn with the simulated habits of ``tests/backend/quality/
simulated.py``, taking the time its habit takes: the server's clock (every module's
``utcnow``) runs on a test clock that only moves forward, so the server times each answer as
it would in life. The jobs that run after commit (fusion, consensus scoring, the fusion-time
points, the suspension's corrections) are called in the order the worker would run them.
"""

import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.annotations.masks import encode_rle
from backend.core import timeutil
from backend.core.storage import Storage
from backend.gamification import confirm, rules
from backend.gamification.models import PointEntry, PointReason, PointTotal
from backend.quality import gold as gold_versions
from backend.quality.models import RaterStats, excluded_rater
from backend.tasks.models import TaskKind
from tests.backend.quality.simulated import PROFILES, SPAMMERS, Profile, answer, brain_of
from tests.backend.quality.test_attacks import _fuse_completed
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.backend.quality.test_hidden_gold import _kind_and_index
from tests.factories import create_project, signup

POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
SIZE = (40, 56)
FAST_MS = 1500  # the product's default spam threshold


def _masks(n: int) -> list[np.ndarray]:
    """Slices with one to three lesions inside the elliptic brain (every sixth empty)."""
    rng = np.random.default_rng(11)
    masks = []
    for k in range(n):
        mask = np.zeros(SIZE, dtype=bool)
        if k % 6 != 5:
            for _ in range(int(rng.integers(1, 4))):
                y, x = int(rng.integers(10, 28)), int(rng.integers(12, 42))
                h, w = int(rng.integers(4, 8)), int(rng.integers(4, 9))
                mask[y : y + h, x : x + w] = True
        masks.append(mask)
    return masks


MASKS = _masks(90)
BRAIN = brain_of(MASKS[0])


@dataclass
class Volunteer:
    name: str
    habit: Profile
    seconds: float  # time on each slice
    client: TestClient
    answers: int = 0
    suspended: bool = False
    kinds: list[TaskKind] = field(default_factory=list)


class Clock:
    """The server's time: real time plus an offset that only grows (a volunteer's time on a
    slice moves it forward)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def wait(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    original = timeutil.utcnow
    for name, module in list(sys.modules.items()):
        if name.startswith("backend.") and getattr(module, "utcnow", None) is original:
            monkeypatch.setattr(module, "utcnow", fake)
    return fake


def _seed(engine: Engine, storage: Storage) -> int:
    """18 gold slices among 90, the rest crowd tasks needing three answers."""
    with Session(engine) as session:
        project = create_project(
            session,
            min_labels=3,
            max_labels=3,
            gold_rate=0.3,
            gold_schedule=[],
            gold_reveals=1000,
            fast_ms=FAST_MS,
        )
        slices = create_case(session, storage, project, MASKS)
        gold = slices[2::5]
        for s in gold:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, [s for s in slices if s not in gold])
        session.commit()
        return project.id or 0


@dataclass
class Worker:
    """What the worker's jobs have done so far: tasks fused, tasks whose points were written,
    raters whose exclusion was handled."""

    fused: set[int] = field(default_factory=set)
    confirmed: set[int] = field(default_factory=set)
    excluded: set[int] = field(default_factory=set)


def _after_commit(engine: Engine, storage: Storage, clock: Clock, worker: Worker) -> None:
    """The worker after each submit: fuse each completed crowd task and score its answers
    (``test_attacks._fuse_completed``), award their points; then the suspensions' corrections
    (RATER_CHANGED, sent through the outbox to the broker), once per excluded rater."""
    _fuse_completed(engine, storage, worker.fused)
    with Session(engine) as session:
        for task_id in sorted(worker.fused - worker.confirmed):
            confirm.confirm_task(session, task_id, clock(), storage)
            worker.confirmed.add(task_id)
        excluded = session.exec(
            select(RaterStats.project_id, RaterStats.user_id).where(excluded_rater())
        ).all()
        for project_id, user_id in excluded:
            if user_id not in worker.excluded:
                confirm.rater_changed(session, project_id, user_id, clock())
                worker.excluded.add(user_id)
        session.commit()


def _turn(volunteer: Volunteer, engine: Engine, clock: Clock, rng: np.random.Generator) -> None:
    lease = volunteer.client.post("/api/tasks/next")
    if lease.status_code == 403:
        assert lease.json()["code"] == "rater_suspended", lease.text
        volunteer.suspended = True
        return
    assert lease.status_code == 200, lease.text
    lease_id = lease.json()["id"]
    kind, index, _slice_id = _kind_and_index(engine, lease_id)
    mask = answer(MASKS[index], BRAIN, volunteer.habit, rng)
    clock.wait(volunteer.seconds)
    sent = volunteer.client.post(
        f"/api/tasks/{lease_id}/annotations",
        json={
            "mask": {
                "encoding": "rle",
                "width": SIZE[1],
                "height": SIZE[0],
                "counts": encode_rle(mask.astype(np.uint8)),
            },
            "duration_ms": int(volunteer.seconds * 1000),
        },
    )
    if sent.status_code == 403:
        volunteer.suspended = True
        return
    assert sent.status_code == 201, sent.text
    volunteer.answers += 1
    volunteer.kinds.append(kind)


def _run(client: TestClient, engine: Engine, clock: Clock, rounds: int) -> dict[str, Volunteer]:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    habits = {
        "careful": (PROFILES["expert-like"], 25.0),
        "careful too": (PROFILES["slightly generous"], 20.0),
        "careless": (PROFILES["sloppy"], 2.5),
        "spammer": (SPAMMERS["scribbler"], 0.6),
        # Slow enough for the spam rule, "no lesions" everywhere: whatever it earns on empty
        # slices before quality control suspends it, the suspension takes back.
        "lazy": (SPAMMERS["always empty"], 3.0),
    }
    crowd = {}
    for name, (habit, seconds) in habits.items():
        volunteer = TestClient(client.app)
        signup(volunteer, f"{name.replace(' ', '-')}@example.org")
        crowd[name] = Volunteer(name, habit, seconds, volunteer)
    rng = np.random.default_rng(5)
    worker = Worker()
    for _ in range(rounds):
        for volunteer in crowd.values():
            if not volunteer.suspended:
                _turn(volunteer, engine, clock, rng)
                _after_commit(engine, storage, clock, worker)
    return crowd


@POSTGRES
def test_rewards_follow_quality_not_volume(
    client: TestClient, migrated_engine: Engine, storage: Storage, clock: Clock
) -> None:
    random.seed(37)  # the gold draw runs in this process
    _seed(migrated_engine, client.app.state.storage)  # type: ignore[attr-defined]
    crowd = _run(client, migrated_engine, clock, rounds=20)
    me = {name: v.client.get("/api/rewards/me").json() for name, v in crowd.items()}
    with Session(migrated_engine) as session:
        # The shown totals are the ledger's sums.
        assert (
            session.exec(select(func.sum(PointTotal.total))).one()
            == session.exec(select(func.sum(PointEntry.points))).one()
        )
        reversed_ = session.exec(
            select(func.count()).where(PointEntry.reason == PointReason.correction)
        ).one()
    careful, careless, spammer = crowd["careful"], crowd["careless"], crowd["spammer"]
    print("\nvolunteer     answers  gold  points  per answer (badges aside)  level  badges")
    for name, v in crowd.items():
        user = me[name]
        per = (user["total"] - sum(b["points"] for b in user["badges"])) / max(v.answers, 1)
        print(
            f"{name:12s} {v.answers:8d} {v.kinds.count(TaskKind.gold):5d} {user['total']:7d}"
            f" {per:26.1f}  {user['level']['number']:5d}  {len(user['badges']):6d}"
            f" {'suspended' if v.suspended else ''}"
        )
    # Same volume for the careful and the careless rater.
    assert careful.answers == careless.answers == 20
    # The careful rater: near the top of every answer's scale, levels up, and the badges of
    # a first label, ten slices, a sharp outline and ten confirmed answers.
    answer_points = me["careful"]["total"] - sum(b["points"] for b in me["careful"]["badges"])
    assert answer_points >= 0.75 * rules.CONFIRMED_POINTS * careful.answers
    assert me["careful"]["level"]["number"] == rules.level_of(me["careful"]["total"]).number
    assert me["careful"]["level"]["number"] >= 3
    badges = {b["id"] for b in me["careful"]["badges"]}
    assert {"first-label", "ten-slices", "sharp-outline", "confirmed-ten"} <= badges
    # The careless fast rater: clearly fewer points an answer (under half the careful one's;
    # 38 % when written).
    careless_points = me["careless"]["total"] - sum(b["points"] for b in me["careless"]["badges"])
    assert careless_points / careless.answers < 0.5 * answer_points / careful.answers
    # The spammers: suspended, nothing net (what the lazy one earned reversed), off the board.
    assert spammer.suspended
    assert crowd["lazy"].suspended
    assert me["spammer"]["total"] <= 0
    assert me["lazy"]["total"] <= 0
    assert reversed_ >= 0  # what they earned before the suspension, if anything, went back
    for cheat in (spammer, crowd["lazy"]):
        seen = cheat.client.get("/api/rewards/leaderboard?board=all&limit=100").json()
        assert seen["me"] is None
        assert not any(row["you"] for row in seen["rows"])
    board = careful.client.get("/api/rewards/leaderboard?board=all&limit=100").json()
    assert board["rows"][0]["you"] or board["me"]["rank"] == 2  # a careful rater leads
    assert board["total"] == 3  # the careful two and the careless one
