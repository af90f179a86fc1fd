"""The demo's tutorial material: synthetic cases with mimics (``imaging.mimics``), imported
into the demo project and set aside, so the demo alone can teach, practise and qualify.

Two cases: one with few lesions (its lesion-free slices show each mimic alone or nearly) and
one with many (lesion slices of every load). Idempotent, like the rest of the demo.
"""

from collections.abc import Callable, Mapping
from functools import lru_cache

from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.core.storage import Storage
from backend.imaging.mimics import MimicKind
from backend.imaging.models import CONSENT_PRESETS, Case
from backend.imaging.preprocess import CaseSource
from backend.imaging.service import CaseLoader, CaseMeta, ImportOutcome, import_cases
from backend.imaging.synthetic import (
    SyntheticCase,
    mimic_slices,
    synthesize_case,
    synthetic_fingerprint,
)
from backend.tutorials import material

# (seed, lesions) of each tutorial case: far from the crowd cases' seeds (0, 1, 2, ...).
TUTORIAL_CASES = ((9001, 3), (9002, 30))
DEMO_SOURCE = "mscrowd synthetic with mimics (MNI152 2009 template shipped by nilearn)"


@lru_cache(maxsize=len(TUTORIAL_CASES))
def synthesized(seed: int, lesions: int) -> SyntheticCase:
    """A tutorial case as synthesised (kept: the import and the mimic map both need it)."""
    return synthesize_case(seed, lesion_count=lesions, mimics=True)


def mimic_map(case: SyntheticCase) -> dict[int, str]:
    """Axial slice index -> the mimic it teaches: slices that show one kind alone where there
    are, else lesion-free slices where the kind is clearly visible (a slice showing two kinds
    goes to the scarcer)."""
    alone = mimic_slices(case, only=True)
    visible = mimic_slices(case)
    candidates = {kind: alone.get(kind) or visible.get(kind, []) for kind in MimicKind}
    chosen: dict[int, str] = {}
    # The scarcest kind first (choroid plexus shares its slices with the caps and bands).
    for kind in sorted(MimicKind, key=lambda k: len(candidates[k])):
        for index in candidates[kind]:
            chosen.setdefault(int(index), kind.value)
    return chosen


def ensure_tutorial_cases(
    *, engine: Engine, storage: Storage, project_name: str
) -> list[ImportOutcome]:
    """Import and set aside the demo's tutorial cases (skipped when already there)."""
    outcomes: list[ImportOutcome] = []
    for seed, lesions in TUTORIAL_CASES:
        fingerprint = synthetic_fingerprint(seed, lesions, mimics=True)
        with Session(engine) as session:
            found = session.exec(select(Case).where(Case.source_sha256 == fingerprint)).first()
        if found is not None and found.tutorial:
            continue
        synthetic = synthesized(seed, lesions)
        if found is None:
            outcomes += import_cases(
                engine=engine,
                storage=storage,
                project_name=project_name,
                loaders=[CaseLoader(synthetic.source.name, _loader(synthetic.source))],
                meta=CaseMeta(DEMO_SOURCE, "CC-BY-4.0", CONSENT_PRESETS["open"]),
            )
        with Session(engine) as session:
            case = session.exec(select(Case).where(Case.source_sha256 == fingerprint)).one()
            if not case.tutorial:
                _set_aside(session, storage, project_name, case.public_id, mimic_map(synthetic))
                session.commit()
    return outcomes


def _loader(source: CaseSource) -> Callable[[], CaseSource]:
    return lambda: source


def _set_aside(
    session: Session, storage: Storage, project: str, public_id: str, mimics: Mapping[int, str]
) -> None:
    material.use_case(
        session=session, storage=storage, project_name=project, public_id=public_id, mimics=mimics
    )
