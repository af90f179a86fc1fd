"""The demo's tutorial material: every lesson finds its examples, each mimic kind is
catalogued, and a catalogued mimic slice is where the generator put that mimic."""

from pathlib import Path

import numpy as np
from sqlmodel import Session, select

from backend.core.db import create_db_engine
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.imaging.mimics import MimicKind, code
from backend.imaging.models import Case, Slice
from backend.tutorials import lessons
from backend.tutorials.content import default_catalog
from backend.tutorials.demo import TUTORIAL_CASES, ensure_tutorial_cases, synthesized
from backend.tutorials.models import MaterialKind, TutorialSlice


def test_the_demo_can_teach_every_lesson_and_every_mimic(tmp_path: Path, storage: Storage) -> None:
    # On the embedded default only, as the demo runs (synthesis takes its time).
    db_engine = create_db_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    upgrade(db_engine)
    ensure_tutorial_cases(engine=db_engine, storage=storage, project_name="demo")
    assert ensure_tutorial_cases(engine=db_engine, storage=storage, project_name="demo") == []
    seed, lesions = TUTORIAL_CASES[0]
    synthetic = synthesized(seed, lesions)  # as the import had it
    with Session(db_engine) as session:
        cases = session.exec(select(Case)).all()
        assert len(cases) == len(TUTORIAL_CASES)
        assert all(c.tutorial for c in cases)
        rows = session.exec(select(TutorialSlice)).all()
        assert {r.mimic for r in rows if r.kind is MaterialKind.mimic} == {
            k.value for k in MimicKind
        }
        for lesson in default_catalog().lessons("en"):
            assert lessons.resolved(session, lesson).complete, lesson.id
        first = next(c for c in cases if c.source_sha256 == synthetic.source.fingerprint)
        for row in rows:
            if row.kind is not MaterialKind.mimic or row.case_id != first.id:
                continue
            index = session.get(Slice, row.slice_id).index  # type: ignore[union-attr]
            labels = synthetic.mimic_labels[:, :, index]
            assert np.count_nonzero(labels == code(MimicKind(row.mimic))) > 0, row
            assert not synthetic.lesion_mask[:, :, index].any()
    db_engine.dispose()
