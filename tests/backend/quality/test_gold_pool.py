"""The representative gold pool (issue 33): strata, spread, pool size, refills, and gold that
cannot be told from crowd slices by its pixels."""

import itertools
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.core.db import create_db_engine
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.imaging.demo import DEMO_PROJECT, build_demo
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import gold as gold_versions
from backend.quality import gold_pool
from backend.quality.gold_pool import SliceLoad, Stratum
from backend.quality.models import GoldVersion
from backend.tasks.models import Task, TaskKind, TaskState
from tests.backend.quality.test_gold import create_case
from tests.factories import create_project

# One case of 40 slices in runs, as lesions lie along a brain: lesion pixels per slice.
RUNS = [(10, 0), (8, 20), (6, 100), (4, 350), (7, 20), (5, 0)]
SHARES = {Stratum.empty: 0.375, Stratum.small: 0.375, Stratum.medium: 0.15, Stratum.large: 0.1}


def _masks() -> list[np.ndarray]:
    masks: list[np.ndarray] = []
    for length, pixels in RUNS:
        block = np.zeros(22 * 20, dtype=bool)
        block[:pixels] = True
        mask = np.zeros((32, 32), dtype=bool)
        mask[8:30, 6:26] = block.reshape(22, 20)  # inside the elliptic brain
        masks.extend(mask.copy() for _ in range(length))
    return masks


def _project_with_cases(
    session: Session, storage: Storage, cases: int, **overrides: object
) -> Project:
    project = create_project(session, **overrides)
    for _ in range(cases):
        slices = create_case(session, storage, project, _masks())
        session.add_all(
            Task(project_id=project.id or 0, slice_id=s.id or 0, required_labels=3) for s in slices
        )
    session.flush()
    return project


def _close_pairs(rows: list[tuple[Slice, Case]]) -> list[tuple[int, int]]:
    return [
        (a.index, b.index)
        for (a, _), (b, _) in itertools.combinations(rows, 2)
        if a.case_id == b.case_id and abs(a.index - b.index) < gold_pool.MIN_GAP
    ]


def _stratum(slice_: Slice) -> Stratum | None:
    return gold_pool.stratum_of(float(slice_.reference_pixels or 0), None)


# --- pure parts ---------------------------------------------------------------------------


def test_pool_size_covers_a_volunteers_first_thousand_answers() -> None:
    schedule = [[10, 0.4], [30, 0.3], [100, 0.2]]  # the projects' default
    # 10 x 0.4 + 20 x 0.3 + 70 x 0.2 + 900 x 0.1
    assert gold_pool.expected_gold(schedule, 0.1) == pytest.approx(114.0)
    assert gold_pool.pool_size(schedule, 0.1, available=10_000, slices=10_000) == 143
    assert gold_pool.pool_size(schedule, 0.1, available=40, slices=10_000) == 40
    assert gold_pool.pool_size(schedule, 0.1, available=10_000, slices=421) == 105
    assert gold_pool.pool_size([], 0.05, available=10_000, slices=10_000, margin=1.0) == 50
    assert gold_pool.pool_size([], 0.0, available=10_000, slices=10_000) == 0


def test_strata_by_lesion_area_and_hyperintensity() -> None:
    assert gold_pool.stratum_of(0.0, 0.0) is Stratum.empty
    assert gold_pool.stratum_of(0.0, 25.0) is Stratum.mimic  # bright, but no lesion
    assert gold_pool.stratum_of(12.0, None) is Stratum.small
    assert gold_pool.stratum_of(120.0, None) is Stratum.medium
    assert gold_pool.stratum_of(400.0, None) is Stratum.large
    # Without a reference the hyperintense area is the estimate; noise below the floor is empty.
    assert gold_pool.stratum_of(None, 5.0) is Stratum.empty
    assert gold_pool.stratum_of(None, 120.0) is Stratum.medium
    assert gold_pool.stratum_of(None, None) is None


def _loads(cases: int, per_case: int = 100) -> list[SliceLoad]:
    strata = [Stratum.empty] * 30 + [Stratum.small] * 25 + [Stratum.medium] * 25
    strata += [Stratum.large] * 10 + [Stratum.empty] * 10
    return [
        SliceLoad(c * per_case + i, c, i, strata[i]) for c in range(cases) for i in range(per_case)
    ]


def test_spread_order_is_proportional_and_spread_over_cases_and_positions() -> None:
    loads = _loads(5)
    shares = {s: n / 100 for s, n in Counter(x.stratum for x in loads[:100]).items()}
    order = list(gold_pool.spread_order(loads, shares))
    assert sorted(x.slice_id for x in order) == [x.slice_id for x in loads]
    page = order[:40]
    assert not [
        (a, b)
        for a, b in itertools.combinations(page, 2)
        if a.case_id == b.case_id and abs(a.index - b.index) < gold_pool.MIN_GAP
    ]
    per_case = Counter(x.case_id for x in page)
    assert len(per_case) == 5
    assert max(per_case.values()) - min(per_case.values()) <= 1
    counts = Counter(x.stratum for x in page)
    for stratum, share in shares.items():
        assert abs(counts[stratum] - 40 * share) <= 1, (stratum, counts)
    # Every prefix stays proportional, so a pool cut anywhere is representative.
    for n in (7, 13, 25):
        prefix = Counter(x.stratum for x in order[:n])
        assert all(abs(prefix[s] - n * share) <= 1 for s, share in shares.items())


def test_spread_order_fills_in_around_gold_already_there() -> None:
    loads = _loads(2)
    gold = [SliceLoad(10_000, 0, 40, Stratum.small), SliceLoad(10_001, 0, 46, Stratum.small)]
    small = [x for x in loads if x.stratum is Stratum.small]
    order = list(gold_pool.spread_order(small, {Stratum.small: 1.0}, chosen=gold))
    assert order[0].case_id == 1  # the case without small gold first
    near = [x for x in order[:4] for g in gold if x.case_id == 0 and abs(x.index - g.index) < 4]
    assert not near


def test_auc_counts_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(np.float64)  # many ties
    positive = rng.random(60) < 0.3
    pairs = [
        1.0 if p > q else 0.5 if p == q else 0.0
        for p in scores[positive]
        for q in scores[~positive]
    ]
    assert gold_pool.auc(scores, positive) == pytest.approx(np.mean(pairs))


def test_separability_auc_tells_shifted_features_and_not_random_ones() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(600, 4))
    gold = rng.random(600) < 0.25
    assert abs(gold_pool.separability_auc(features, gold) - 0.5) < 0.1
    shifted = features + 1.5 * gold[:, None] * np.array([0, 1, 0, 0])
    assert gold_pool.separability_auc(shifted, gold) > 0.8
    with pytest.raises(ValueError, match="two gold"):
        gold_pool.separability_auc(features, np.arange(600) == 0)


def test_flair_features_see_brain_and_bright_lesions() -> None:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[8:56, 8:56] = 150
    plain = gold_pool.flair_features(image)
    image[20:26, 20:26] = 250
    lesioned = gold_pool.flair_features(image)
    assert plain[3] == pytest.approx(48 * 48 / 64 / 64)
    assert plain[1] == plain[2] == 0
    assert lesioned[1] == lesioned[2] == pytest.approx(36 / 48 / 48)
    assert lesioned[0] > plain[0]
    # Without a zero background (not skull-stripped) Otsu's threshold finds the brain.
    noisy = (image.astype(np.int64) + 10).clip(0, 255).astype(np.uint8)
    assert gold_pool.flair_features(noisy)[3] == pytest.approx(48 * 48 / 64 / 64)


# --- in the database ----------------------------------------------------------------------


def test_gold_candidates_by_stratum_spread_and_never_twice(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = _project_with_cases(session, storage, 2)
        pid = project.id or 0
        page = gold_versions.gold_candidates(session=session, project_id=pid, limit=8, offset=0)
        assert not _close_pairs(page)
        assert sorted(Counter(s.case_id for s, _ in page).values()) == [4, 4]
        counts = Counter(_stratum(s) for s, _ in page)
        assert all(abs(counts[s] - 8 * share) <= 1 for s, share in SHARES.items()), counts
        # Pages are slices of one stable order.
        more = gold_versions.gold_candidates(session=session, project_id=pid, limit=4, offset=4)
        assert [s.id for s, _ in more] == [s.id for s, _ in page[4:]]

        small = gold_versions.gold_candidates(
            session=session, project_id=pid, limit=8, offset=0, stratum=Stratum.small
        )
        assert {_stratum(s) for s, _ in small} == {Stratum.small}
        assert not _close_pairs(small)
        assert sorted(Counter(s.case_id for s, _ in small).values()) == [4, 4]

        first, case = page[0]
        gold_versions.approve_reference(
            session=session, storage=storage, slice_id=first.id or 0, expert_id=None
        )
        gold_versions.retire_gold(session=session, slice_id=first.id or 0)
        project.holdout_cases = [case.public_id]
        session.add(project)
        session.flush()
        left = gold_versions.gold_candidates(session=session, project_id=pid, limit=100, offset=0)
        assert len(left) == 40  # the other case, all of it
        assert {c.id for _, c in left} != {case.id}
        assert first.id not in {s.id for s, _ in left}  # once gold, never a candidate again


def test_seed_gold_fills_a_representative_pool_and_refill_keeps_it(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        # 10 gold expected in 1,000 answers, so 13 with the margin (of 80 slices).
        project = _project_with_cases(session, storage, 2, gold_schedule=[], gold_rate=0.01)
        pid = project.id or 0
        assert gold_versions.seed_gold(session=session, storage=storage, project_id=pid) == 13
        assert gold_versions.seed_gold(session=session, storage=storage, project_id=pid) == 0
        gold = session.exec(
            select(Slice)
            .join(GoldVersion, col(GoldVersion.slice_id) == col(Slice.id))
            .where(col(GoldVersion.retired_at).is_(None))
        ).all()
        counts = Counter(_stratum(s) for s in gold)
        assert all(abs(counts[s] - 13 * share) <= 1 for s, share in SHARES.items()), counts
        assert counts[Stratum.empty] >= 4  # gold is not only lesion-heavy slices
        retired = session.exec(
            select(Task).where(
                Task.project_id == pid,
                Task.kind == TaskKind.normal,
                Task.state == TaskState.retired,
            )
        ).all()
        assert {t.slice_id for t in retired} == {s.id for s in gold}

        large = next(s for s in gold if _stratum(s) is Stratum.large)
        gold_versions.retire_gold(session=session, slice_id=large.id or 0)
        stratum = gold_pool.slice_stratum(session=session, slice_id=large.id or 0)
        assert stratum is Stratum.large
        version = gold_pool.refill(session, storage, pid, stratum)
        assert version is not None
        assert version.slice_id != large.id
        refilled = session.get(Slice, version.slice_id)
        assert refilled is not None
        assert _stratum(refilled) is Stratum.large
        assert gold_versions.seed_gold(session=session, storage=storage, project_id=pid) == 0
        assert gold_pool.refill(session, storage, pid, Stratum.mimic) is None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Storage]:
    """The demo with 3 cases, on SQLite (the seeding's queries are tested on both dialects
    above; this is about pixels)."""
    folder = tmp_path_factory.mktemp("demo")
    engine = create_db_engine(f"sqlite:///{folder / 'demo.sqlite'}")
    upgrade(engine)
    storage = Storage((folder / "storage").as_uri())
    build_demo(engine=engine, storage=storage, cases=3, workers=1)
    return engine, storage


def test_demo_gold_cannot_be_told_from_crowd_slices_by_its_pixels(
    demo: tuple[Engine, Storage],
) -> None:
    engine, storage = demo
    with Session(engine) as session:
        project = session.exec(select(Project).where(Project.name == DEMO_PROJECT)).one()
        slices = session.exec(select(Slice).order_by(col(Slice.id))).all()
        gold_ids = set(
            session.exec(select(GoldVersion.slice_id).where(col(GoldVersion.retired_at).is_(None)))
        )
        state = gold_pool.pool_state(session=session, project_id=project.id or 0)
        page = gold_versions.gold_candidates(
            session=session, project_id=project.id or 0, limit=50, offset=0
        )
    # 114 gold expected in 1,000 answers, x 1.25 = 143, capped at a quarter of 421 slices.
    assert len(slices) == 421
    assert len(gold_ids) == 105
    pool = Counter(g.stratum for g in state.gold)
    assert pool[Stratum.empty] > 50  # two thirds of the demo's slices have no lesion
    for stratum, share in state.shares.items():
        assert abs(pool[stratum] / 105 - share) < 0.03
    assert not _close_pairs(page)

    features = np.array(
        [
            gold_pool.flair_features(gold_pool.read_grey(storage, s.image_keys["flair"]))
            for s in slices
        ]
    )
    gold = np.array([s.id in gold_ids for s in slices])
    after = np.mean([gold_pool.separability_auc(features, gold, seed=k) for k in range(3)])
    assert after < 0.65
    # The check has the power to see the old rule: each case's 3 heaviest slices.
    heaviest = {
        s.id
        for case_id in {s.case_id for s in slices}
        for s in sorted(
            (s for s in slices if s.case_id == case_id), key=lambda s: -(s.reference_pixels or 0)
        )[:3]
    }
    before = np.array([s.id in heaviest for s in slices])
    assert np.mean([gold_pool.separability_auc(features, before, seed=k) for k in range(3)]) > 0.75
