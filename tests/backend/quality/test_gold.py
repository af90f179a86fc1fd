"""Gold samples and repeats through the service layer: versions, the gold schedule, scoring,
reliability of simulated raters on real masks, and suspension."""

import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations import sweep
from backend.annotations.models import Annotation
from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.errors import Conflict
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.quality import gold as gold_versions
from backend.quality import review
from backend.quality import service as quality
from backend.quality.models import (
    GoldScore,
    GoldSource,
    GoldVersion,
    RaterAction,
    RaterStats,
    RepeatScore,
)
from backend.quality.reliability import RaterTotals, TrustLevel, reliability
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskKind, TaskState
from tests.backend.quality.simulated import PROFILES, answer, brain_of, gold_slices
from tests.crowd import mask_rle as _mask_rle  # other modules import it from here
from tests.factories import PASSWORD, create_case_row, create_project, submit

LEASE = 600


def _users(session: Session, n: int, prefix: str = "v") -> list[User]:
    return [
        auth.create_user(session=session, email=f"{prefix}{i}@example.org", password=PASSWORD)
        for i in range(n)
    ]


def create_case(
    session: Session, storage: Storage, project: Project, masks: list[np.ndarray]
) -> list[Slice]:
    """A case whose slices have the masks' sizes, an elliptic brain on the FLAIR image, and
    the masks as imported reference masks."""
    case = create_case_row(session, project)
    slices = []
    for index, mask in enumerate(masks):
        h, w = mask.shape
        flair = (brain_of(mask) * 100 + mask * 100).astype(np.uint8)
        key = f"cases/{case.public_id}/axial/{index:04d}/flair.png"
        ref_key = f"cases/{case.public_id}/reference/axial/{index:04d}.png"
        storage.put(key, encode_png(flair))
        storage.put(ref_key, encode_png((mask * 255).astype(np.uint8)))
        slice_ = Slice(
            case_id=case.id or 0,
            index=index,
            crop_x0=0,
            crop_y0=0,
            crop_x1=w,
            crop_y1=h,
            image_keys={"flair": key},
            reference_key=ref_key,
            reference_pixels=int(mask.sum()),
            brain_fraction=0.5,
        )
        session.add(slice_)
        slices.append(slice_)
    session.flush()
    return slices


def _normal_tasks(session: Session, project: Project, slices: list[Slice]) -> list[Task]:
    made = [
        Task(project_id=project.id or 0, slice_id=s.id or 0, required_labels=project.min_labels)
        for s in slices
    ]
    session.add_all(made)
    session.flush()
    return made


def _square_masks(n: int, size: tuple[int, int] = (16, 24)) -> list[np.ndarray]:
    masks = []
    for k in range(n):
        mask = np.zeros(size, dtype=bool)
        mask[3 + k % 5 : 8 + k % 5, 4:10] = True
        masks.append(mask)
    return masks


def test_gold_versions_are_frozen_and_scores_keep_theirs(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        (expert, volunteer, second) = _users(session, 3)
        (slice_,) = create_case(session, storage, project, _square_masks(1))
        (normal,) = _normal_tasks(session, project, [slice_])
        first = gold_versions.approve_reference(
            session=session, storage=storage, slice_id=slice_.id or 0, expert_id=expert.id or 0
        )
        assert (first.version, first.source) == (1, GoldSource.reference)
        session.refresh(normal)
        assert normal.state is TaskState.retired  # gold slices are not crowd-labelled too
        lease = tasks.next_task(session=session, user=volunteer, lease_seconds=LEASE)
        assert lease is not None
        assert lease.task.kind is TaskKind.gold
        gold = gold_versions.read_mask(storage, first.mask_key)
        result = submit(session, storage, volunteer, lease, mask=_mask_rle(gold))
        assert result.feedback is not None
        assert result.feedback.dice == 1.0
        assert (result.feedback.lesions_found, result.feedback.lesions_missed) == (1, 0)
        # An expert repaints: a new version; the stored mask and the old score stay.
        painted = np.zeros_like(gold)
        painted[0:4, 0:4] = True
        second_version = gold_versions.set_gold(
            session=session,
            storage=storage,
            slice_id=slice_.id or 0,
            mask=painted.astype(np.uint8),
            source=GoldSource.expert,
            expert_id=expert.id,
        )
        assert second_version.version == 2
        assert np.array_equal(gold_versions.read_mask(storage, first.mask_key), gold)
        (score,) = session.exec(select(GoldScore)).all()
        assert score.gold_version_id == first.id
        lease2 = tasks.next_task(session=session, user=second, lease_seconds=LEASE)
        assert lease2 is not None
        result2 = submit(session, storage, second, lease2, mask=_mask_rle(gold))
        assert result2.feedback is not None
        assert result2.feedback.dice == 0.0
        scores = session.exec(select(GoldScore).order_by(GoldScore.id)).all()  # type: ignore[arg-type]
        assert [s.gold_version_id for s in scores] == [first.id, second_version.id]
        # Gold masks and feedback overlays belong to their rows: no orphans, none missing.
        swept = sweep.check(session=session, storage=storage, now=utcnow() + timedelta(hours=1))
        assert swept.consistent
        assert len(storage.list("gold")) == 2
        assert len(storage.list("feedback")) == 2
        # Retired: served no more.
        gold_versions.retire_gold(session=session, slice_id=slice_.id or 0)
        (third,) = _users(session, 1, prefix="late")
        assert tasks.next_task(session=session, user=third, lease_seconds=LEASE) is None


def test_the_gold_schedule_over_many_requests(migrated_engine: Engine, storage: Storage) -> None:
    # 40 % of a new volunteer's first 10 tasks, 30 % up to 30, 20 % up to 100, then gold_rate.
    random.seed(19)
    raters, per_rater = 12, 40
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=raters, gold_rate=0.05)
        masks = _square_masks(2 * per_rater)
        slices = create_case(session, storage, project, masks)
        mask_of = {s.id: m for s, m in zip(slices, masks, strict=True)}
        gold_slices_, normal_slices = slices[:per_rater], slices[per_rater:]
        for s in gold_slices_:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )  # type: ignore[arg-type]
        _normal_tasks(session, project, normal_slices)
        gold_by_step = {10: 0, 30: 0, 40: 0}
        for rater in _users(session, raters):
            seen: set[int] = set()
            for n in range(per_rater):
                lease = tasks.next_task(session=session, user=rater, lease_seconds=LEASE)
                assert lease is not None
                assert lease.task.slice_id not in seen  # never the same slice twice
                seen.add(lease.task.slice_id)
                if lease.task.kind is TaskKind.gold:
                    gold_by_step[min(s for s in gold_by_step if n < s)] += 1
                # Good answers: an empty mask on every check would be spam.
                submit(session, storage, rater, lease, mask=_mask_rle(mask_of[lease.task.slice_id]))
        expected = {10: 0.4 * 10 * raters, 30: 0.3 * 20 * raters, 40: 0.2 * 10 * raters}
        for step, count in gold_by_step.items():
            # Within 3 binomial standard deviations (a fixed seed: no flakes).
            n = {10: 10, 30: 20, 40: 10}[step] * raters
            sd = (expected[step] * (1 - expected[step] / n)) ** 0.5
            assert abs(count - expected[step]) <= 3 * sd, (step, count, expected[step])


def test_no_gold_slice_the_volunteer_saw_as_a_normal_task(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=1.0, gold_schedule=[])
        (slice_,) = create_case(session, storage, project, _square_masks(1))
        _normal_tasks(session, project, [slice_])
        (volunteer, other) = _users(session, 2)
        lease = tasks.next_task(session=session, user=volunteer, lease_seconds=LEASE)
        assert lease is not None
        assert lease.task.kind is TaskKind.normal
        submit(session, storage, volunteer, lease)
        gold_versions.approve_reference(
            session=session, storage=storage, slice_id=slice_.id or 0, expert_id=other.id or 0
        )
        assert tasks.next_task(session=session, user=volunteer, lease_seconds=LEASE) is None
        gold = tasks.next_task(session=session, user=other, lease_seconds=LEASE)
        assert gold is not None
        assert gold.task.kind is TaskKind.gold


def test_repeats_come_back_after_the_gap_and_record_intra_rater_dice(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=1, repeat_rate=1.0, repeat_gap=3)
        slices = create_case(session, storage, project, _square_masks(8))
        _normal_tasks(session, project, slices)
        (rater,) = _users(session, 1)
        first_masks: dict[int, np.ndarray] = {}
        order = []
        for _ in range(8):
            lease = tasks.next_task(session=session, user=rater, lease_seconds=LEASE)
            assert lease is not None
            order.append((lease.task.kind, lease.task.slice_id))
            mask = np.zeros((16, 24), dtype=bool)
            mask[2:6, 2:8] = True
            if lease.task.kind is TaskKind.repeat:
                mask[2:6, 2:5] = False  # the second answer covers half of the first
            else:
                first_masks[lease.task.slice_id] = mask
            submit(session, storage, rater, lease, mask=_mask_rle(mask))
        # The first answer's repeat is due after 1 + 3 answers: served as the 5th task.
        assert [kind for kind, _ in order[:4]] == [TaskKind.normal] * 4
        assert order[4] == (TaskKind.repeat, order[0][1])
        scores = session.exec(select(RepeatScore)).all()
        assert scores
        assert all(s.dice == pytest.approx(2 * 12 / (24 + 12)) for s in scores)
        stats_row = session.exec(select(RaterStats)).one()
        assert stats_row.repeats == len(scores)
        assert reliability(
            RaterTotals(repeats=stats_row.repeats, repeat_dice_sum=stats_row.repeat_dice_sum)
        ).consistency == pytest.approx(2 / 3)


def test_always_empty_volunteer_is_suspended_and_told_why(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[], min_labels=1)
        slices = create_case(session, storage, project, _square_masks(8))
        for s in slices[:4]:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )  # type: ignore[arg-type]
        _normal_tasks(session, project, slices[4:])
        (spammer,) = _users(session, 1)
        for _ in range(3):
            lease = tasks.next_task(session=session, user=spammer, lease_seconds=LEASE)
            assert lease is not None
            assert lease.task.kind is TaskKind.gold
            submit(session, storage, spammer, lease)  # empty mask
        with pytest.raises(tasks.RaterSuspended, match="answered as empty"):
            tasks.next_task(session=session, user=spammer, lease_seconds=LEASE)
        (action,) = session.exec(select(RaterAction)).all()
        assert action.by_user_id is None
        assert "empty mask" in action.reason


@pytest.fixture(scope="module")
def real_slices(open_ms_data: Path) -> list[np.ndarray]:
    return gold_slices(open_ms_data, count=100, seed=3)


def test_reliability_of_simulated_raters_through_the_service(
    migrated_engine: Engine, storage: Storage, real_slices: list[np.ndarray]
) -> None:
    """Acceptance of issue 19: raters simulated from real masks answer 30 gold slices each
    through next_task and submit; the stored reliability ranks them by their true Dice."""
    random.seed(5)
    golds = real_slices[:30]
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        slices = create_case(session, storage, project, golds)
        for s in slices:
            gold_versions.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )  # type: ignore[arg-type]
        by_slice = {s.id: g for s, g in zip(slices, golds, strict=True)}
        raters = _users(session, len(PROFILES))
        truth = {}
        for k, ((_name, profile), rater) in enumerate(zip(PROFILES.items(), raters, strict=True)):
            rng = np.random.default_rng(1000 + k)
            for _ in range(30):
                try:
                    lease = tasks.next_task(session=session, user=rater, lease_seconds=LEASE)
                except tasks.RaterSuspended:
                    break  # the rules stopped them before their 30th check slice
                assert lease is not None
                assert lease.task.kind is TaskKind.gold
                gold = by_slice[lease.task.slice_id]
                reply = answer(gold, brain_of(gold), profile, rng)
                submit(session, storage, rater, lease, mask=_mask_rle(reply))
            truth[rater.id] = _true_dice(profile, real_slices, 2000 + k)
        priors = quality.rater_priors(session, project.id or 0)
        rows = {r.user_id: r for r in session.exec(select(RaterStats)).all()}
        estimate = {}
        for user_id, row in rows.items():
            assert row.gold == 30 or row.trust is TrustLevel.suspended
            totals = row.totals()
            estimate[user_id] = reliability(totals).quality
            if truth[user_id] >= 0.6:
                assert row.trust is not TrustLevel.suspended, (truth[user_id], row.suspended_reason)
                assert not priors[user_id].excluded
        rho = stats.spearmanr([truth[u] for u in rows], [estimate[u] for u in rows]).statistic
        assert rho >= 0.9, rho


def _true_dice(profile: object, slices: list[np.ndarray], seed: int) -> float:
    rng = np.random.default_rng(seed)
    tp = fp = fn = 0
    for gold in slices:
        reply = answer(gold, brain_of(gold), profile, rng)  # type: ignore[arg-type]
        tp += int((gold & reply).sum())
        fp += int((reply & ~gold).sum())
        fn += int((gold & ~reply).sum())
    return 2 * tp / (2 * tp + fp + fn)


def test_rater_priors_leave_gold_versions_alone(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session)
        assert quality.rater_priors(session, project.id or 0) == {}
        assert session.exec(select(GoldVersion)).all() == []


def test_experts_take_no_crowd_slot_and_their_answers_can_become_gold(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=1)
        masks = _square_masks(1)
        (slice_,) = create_case(session, storage, project, masks)
        (task,) = _normal_tasks(session, project, [slice_])
        volunteer, expert, other = _users(session, 3)
        expert.role = UserRole.expert
        session.add(expert)
        held = tasks.next_task(session=session, user=volunteer, lease_seconds=LEASE)
        assert held is not None
        # The only slot is the volunteer's; another volunteer gets nothing, the expert the task.
        assert tasks.next_task(session=session, user=other, lease_seconds=LEASE) is None
        mine = tasks.next_task(session=session, user=expert, lease_seconds=LEASE)
        assert mine is not None
        assert mine.task.id == task.id
        answer_ = submit(session, storage, expert, mine, mask=_mask_rle(masks[0]))
        session.refresh(task)
        assert (task.submitted_labels, task.state) == (0, TaskState.open)
        assert answer_.feedback is None
        assert session.exec(select(RaterStats)).all() == []  # no volunteer totals for experts
        submit(session, storage, volunteer, held)
        session.refresh(task)
        assert (task.submitted_labels, task.state) == (1, TaskState.complete)
        (row,) = gold_versions.expert_answers(
            session=session, project_id=project.id or 0, limit=10, offset=0
        )
        assert row[0].id == answer_.annotation.id
        version = gold_versions.promote_answer(
            session=session,
            storage=storage,
            annotation_id=answer_.annotation.id or 0,
            expert_id=expert.id or 0,
        )
        assert version.source is GoldSource.expert
        volunteer_answer = session.exec(
            select(Annotation).where(Annotation.user_id == volunteer.id)
        ).one()
        with pytest.raises(Conflict, match="Only an expert"):
            gold_versions.promote_answer(
                session=session,
                storage=storage,
                annotation_id=volunteer_answer.id or 0,
                expert_id=expert.id or 0,
            )


def test_review_queue_puts_the_most_disputed_slices_first(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=3)
        masks = _square_masks(3)
        slices = create_case(session, storage, project, masks)
        _normal_tasks(session, project, slices)
        raters = _users(session, 3)
        # Slice 0: all agree. Slice 1: one rater paints elsewhere. Slice 2: nobody agrees.
        elsewhere = np.zeros((16, 24), dtype=bool)
        elsewhere[10:14, 15:20] = True
        other = np.zeros((16, 24), dtype=bool)
        other[0:3, 0:3] = True
        plan = {
            0: [masks[0], masks[0], masks[0]],
            1: [masks[1], masks[1], elsewhere],
            2: [masks[2], elsewhere, other],
        }
        by_slice = {s.id: n for n, s in enumerate(slices)}
        for k, rater in enumerate(raters):
            while lease := tasks.next_task(session=session, user=rater, lease_seconds=LEASE):
                n = by_slice[lease.task.slice_id]
                submit(session, storage, rater, lease, mask=_mask_rle(plan[n][k]))
        queue = review.review_queue(
            session=session, storage=storage, project_id=project.id or 0, limit=10
        )
        assert [by_slice[item.slice_id] for item in queue] == [2, 1, 0]
        assert queue[-1].mean_dice == 1.0
        assert queue[1].min_dice == 0.0
        assert queue[1].max_dice == 1.0
        assert len(queue[0].annotation_ids) == 3
        # Once a slice is gold it leaves the queue.
        gold_versions.approve_reference(
            session=session, storage=storage, slice_id=slices[2].id or 0, expert_id=None
        )
        remaining = review.review_queue(
            session=session, storage=storage, project_id=project.id or 0, limit=10
        )
        assert [by_slice[item.slice_id] for item in remaining] == [1, 0]
