"""Can gold slices be told from crowd slices by their pixels? (issue 33, part 2)

The demo (``--cases`` synthetic cases, as ``mscrowd demo`` builds them) and the two open cases
of ../shared/data/open_ms_data/cross_sectional_mni (imported as ``mscrowd import`` does) go
into a temporary SQLite database; gold is chosen by two rules:

- ``heaviest``: the rule before issue 33, each case's 3 slices with the most reference lesion
  pixels (never an empty slice);
- ``stratified``: ``quality.gold.seed_gold``, the representative pool of
  ``quality.gold_pool`` (sized by the project's gold schedule, strata of lesion load in the
  crowd tasks' proportions).

For each, the cross-validated AUC of a logistic regression telling gold from the other slices
by four features of the served FLAIR PNG (``gold_pool.flair_features``: mean brain intensity,
bright share, hyperintense share, brain share), averaged over ``--splits`` fold splits, with
Hanley and McNeil's standard error. 0.5: gold cannot be told apart; 1.0: it always can.

    .venv/bin/python bench/gold_auc.py [--cases 8] [--rule both] [--data both] [--splits 5]
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.core.db import create_db_engine  # noqa: E402
from backend.core.migrations import upgrade  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from backend.imaging.demo import DEMO_PROJECT, build_demo  # noqa: E402
from backend.imaging.models import Case, Slice  # noqa: E402
from backend.imaging.service import CaseMeta, folder_loaders, import_cases  # noqa: E402
from backend.projects.models import Project  # noqa: E402
from backend.quality import gold_pool  # noqa: E402
from backend.quality import service as quality  # noqa: E402
from backend.quality.models import GoldVersion  # noqa: E402

OPEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_ms_data"
OPEN_PROJECT = "open"
HEAVIEST_PER_CASE = 3


def heaviest(slices: list[Slice], per_case: int = HEAVIEST_PER_CASE) -> set[int]:
    """The old rule: each case's ``per_case`` slices with the most reference lesion pixels."""
    chosen: set[int] = set()
    by_case: Counter[int] = Counter()
    for s in sorted(slices, key=lambda s: (-(s.reference_pixels or 0), s.id or 0)):
        if s.reference_pixels and by_case[s.case_id] < per_case:
            by_case[s.case_id] += 1
            chosen.add(s.id or 0)
    return chosen


def project_slices(engine: Engine, name: str) -> tuple[int, list[Slice], set[int]]:
    """The project's id, its slices, and the ids of its current gold slices."""
    with Session(engine) as session:
        project = session.exec(select(Project).where(Project.name == name)).one()
        slices = list(
            session.exec(
                select(Slice)
                .join(Case, col(Case.id) == col(Slice.case_id))
                .where(Case.project_id == project.id)
                .order_by(col(Slice.id))
            )
        )
        gold = set(
            session.exec(
                select(GoldVersion.slice_id).where(
                    col(GoldVersion.retired_at).is_(None),
                    col(GoldVersion.slice_id).in_([s.id for s in slices]),
                )
            )
        )
        return project.id or 0, slices, gold


def hanley_mcneil(a: float, n1: int, n0: int) -> float:
    """Standard error of an AUC ``a`` with ``n1`` positives and ``n0`` negatives."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(
        np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    )


def report(
    name: str, rule: str, features: NDArray[np.float64], gold: NDArray[np.bool_], splits: int
) -> None:
    aucs = [gold_pool.separability_auc(features, gold, seed=k) for k in range(splits)]
    a = float(np.mean(aucs))
    n1, n0 = int(gold.sum()), int((~gold).sum())
    means = " ".join(
        f"{features[gold, j].mean():.3f}/{features[~gold, j].mean():.3f}"
        for j in range(features.shape[1])
    )
    print(
        f"| {name} | {rule} | {n1} | {n0} | {a:.3f} ± {hanley_mcneil(a, n1, n0):.3f} "
        f"| {min(aucs):.3f}-{max(aucs):.3f} | {means} |"
    )


def strata_table(engine: Engine, storage: Storage, project_id: int, gold: set[int]) -> str:
    with Session(engine) as session:
        state = gold_pool.pool_state(session=session, project_id=project_id, storage=storage)
        project = session.get(Project, project_id)
        assert project is not None
        expected = gold_pool.expected_gold(project.gold_schedule, project.gold_rate)
    pool = Counter(g.stratum for g in state.gold if g.slice_id in gold)
    total = sum(pool.values()) or 1
    shares = ", ".join(
        f"{s.value} {state.shares[s]:.2f}/{pool[s] / total:.2f}" for s in gold_pool.Stratum
    )
    return (
        f"expected gold in {gold_pool.HORIZON} answers {expected:.1f}; pool {len(gold)} of "
        f"{state.slices} slices; crowd/pool shares: {shares}"
    )


def measure(
    engine: Engine, storage: Storage, name: str, project: str, rules: list[str], splits: int
) -> None:
    project_id, slices, seeded = project_slices(engine, project)
    features = np.array(
        [
            gold_pool.flair_features(gold_pool.read_grey(storage, s.image_keys["flair"]))
            for s in slices
        ]
    )
    for rule in rules:
        chosen = heaviest(slices) if rule == "heaviest" else seeded
        report(name, rule, features, np.array([s.id in chosen for s in slices]), splits)
    if "stratified" in rules:
        print(f"  {name}: {strata_table(engine, storage, project_id, seeded)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8, help="demo cases (mscrowd demo: 8)")
    parser.add_argument("--seed", type=int, default=0, help="first demo case's seed")
    parser.add_argument("--rule", choices=("both", "heaviest", "stratified"), default="both")
    parser.add_argument("--data", choices=("both", "demo", "open"), default="both")
    parser.add_argument("--splits", type=int, default=5, help="fold splits averaged")
    args = parser.parse_args()
    rules = ["heaviest", "stratified"] if args.rule == "both" else [args.rule]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/bench.sqlite")
        upgrade(engine)
        storage = Storage(Path(tmp, "storage").as_uri())
        features = " · ".join(gold_pool.FEATURES)
        print(f"| data | rule | gold | normal | AUC ± SE | over splits | {features}, gold/normal |")
        print("|---|---|---|---|---|---|---|")
        if args.data in ("both", "demo"):
            build_demo(engine=engine, storage=storage, cases=args.cases, seed=args.seed)
            measure(engine, storage, f"demo ({args.cases} cases)", DEMO_PROJECT, rules, args.splits)
        if args.data in ("both", "open"):
            folder = OPEN / "cross_sectional_mni"
            if not folder.is_dir():
                print(f"  open cases skipped: {folder} not found (the open MS data is absent)")
            else:
                import_cases(
                    engine=engine,
                    storage=storage,
                    project_name=OPEN_PROJECT,
                    loaders=folder_loaders(folder),
                    meta=CaseMeta("open_ms_data (Lesjak et al. 2018), CC-BY", "CC-BY-4.0"),
                )
                with Session(engine) as session:
                    project = session.exec(
                        select(Project).where(Project.name == OPEN_PROJECT)
                    ).one()
                    quality.seed_gold(session=session, storage=storage, project_id=project.id or 0)
                    session.commit()
                measure(engine, storage, "open (2 cases)", OPEN_PROJECT, rules, args.splits)
        engine.dispose()
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
