"""``mscrowd demo``: synthetic MS cases from the MNI152 template, imported with demo accounts."""

import os
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.storage import Storage
from backend.imaging.models import CONSENT_PRESETS, Case
from backend.imaging.preprocess import CaseSource
from backend.imaging.service import CaseLoader, CaseMeta, ImportOutcome, import_cases, imported_case
from backend.imaging.synthetic import synthesize_case, synthetic_fingerprint
from backend.projects import service as projects
from backend.quality import gold

DEMO_PROJECT = "demo"
DEMO_PASSWORD = "mscrowd-demo"
DEMO_ACCOUNTS = (
    ("admin@demo.mscrowd.org", "demo-admin", UserRole.admin),
    ("expert@demo.mscrowd.org", "demo-expert", UserRole.expert),
)
DEMO_SOURCE = "mscrowd synthetic (MNI152 2009 template and tissue maps shipped by nilearn)"


@dataclass(frozen=True)
class DemoReport:
    outcomes: list[ImportOutcome]
    accounts: list[tuple[str, UserRole, bool]]  # email, role, created now
    holdout: list[str]  # public ids of the project's held-out cases


def holdout_count(cases: int) -> int:
    """How many of ``cases`` demo cases are held out to evaluate models (the learning curve):
    none below 4, so the crowd keeps at least 3 to label; one up to 7; two from 8 on."""
    return min(2, cases // 4)


def _synthesize(seed: int) -> CaseSource:
    return synthesize_case(seed).source


def _sources(seeds: list[int], workers: int) -> Generator[CaseSource]:
    if workers <= 1 or len(seeds) <= 1:
        yield from (_synthesize(s) for s in seeds)
        return
    # Synthesis is CPU-bound numpy; two processes halve the wait on a 2-core machine.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_synthesize, seeds)


def ensure_accounts(*, engine: Engine, password: str) -> list[tuple[str, UserRole, bool]]:
    """Create the demo admin and expert unless they exist."""
    made = []
    with Session(engine) as session:
        for email, name, role in DEMO_ACCOUNTS:
            exists = session.exec(select(User.id).where(User.email == email)).first()
            if exists is None:
                auth.create_user(
                    session=session, email=email, password=password, role=role, display_name=name
                )
            made.append((email, role, exists is None))
        session.commit()
    return made


def build_demo(
    *,
    engine: Engine,
    storage: Storage,
    cases: int = 8,
    seed: int = 0,
    password: str = DEMO_PASSWORD,
    workers: int | None = None,
    tutorial: bool = False,
) -> DemoReport:
    """Synthesise and import ``cases`` demo cases (idempotent) and the demo accounts; with
    ``tutorial``, the tutorial cases too (``tutorials.demo``: the qualification gate then
    holds for the demo's volunteers)."""
    seeds = [seed + i for i in range(cases)]
    todo = [s for s in seeds if not imported_case(engine, DEMO_PROJECT, synthetic_fingerprint(s))]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    stream = _sources(todo, workers)  # lazy: the pool starts on the first case

    def loader(case_seed: int) -> CaseLoader:
        def load() -> CaseSource:
            source = next(stream)
            assert source.name == f"synthetic-{case_seed}"
            return source

        return CaseLoader(f"synthetic-{case_seed}", load)

    try:
        outcomes = import_cases(
            engine=engine,
            storage=storage,
            project_name=DEMO_PROJECT,
            loaders=[loader(s) for s in todo],
            meta=CaseMeta(DEMO_SOURCE, "CC-BY-4.0", CONSENT_PRESETS["open"]),
        )
    finally:
        stream.close()
    if tutorial:
        from backend.tutorials.demo import ensure_tutorial_cases

        outcomes += ensure_tutorial_cases(engine=engine, storage=storage, project_name=DEMO_PROJECT)
    with Session(engine) as session:
        project = projects.get_or_create(session=session, name=DEMO_PROJECT)
        assert project.id is not None
        # The last seeds' cases are held out for evaluating models unless the project holds
        # some out already; before the gold pool, which never draws on held-out cases.
        if not project.holdout_cases:
            wanted = [synthetic_fingerprint(s) for s in seeds[cases - holdout_count(cases) :]]
            held = session.exec(
                select(Case.public_id)
                .where(Case.project_id == project.id, col(Case.source_sha256).in_(wanted))
                .order_by(col(Case.id))
            ).all()
            if held:
                projects.set_holdout(
                    session=session, project_name=DEMO_PROJECT, case_ids=list(held)
                )
        holdout = list(project.holdout_cases)
        # A representative pool (``quality.gold_pool``): sized by the gold schedule, stratified
        # by lesion load like the crowd's tasks, empty slices included.
        gold.seed_gold(session=session, storage=storage, project_id=project.id)
        session.commit()
    done = [
        ImportOutcome(f"synthetic-{s}", "skipped", "already imported")
        for s in seeds
        if s not in todo
    ]
    return DemoReport(
        outcomes=done + outcomes,
        accounts=ensure_accounts(engine=engine, password=password),
        holdout=holdout,
    )
