"""Fixtures of the ML tests: a project of synthetic cases on PostgreSQL, with the settings the
in-process stage jobs read (``backend.worker.job_resources``)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from backend.core.config import get_settings
from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.imaging.service import CaseMeta, import_source
from backend.imaging.synthetic import synthesize_case
from backend.worker import job_resources
from tests.factories import create_project


@dataclass
class Setup:
    engine: Engine
    storage: Storage
    project_id: int
    cases: list[str]  # public ids; the last is held out


def synthetic_project(engine: Engine, storage: Storage, seeds: tuple[int, ...]) -> Setup:
    """A project of synthetic cases with reference masks; the last case held out."""
    with transaction(engine) as session:
        project = create_project(session, name="al", min_labels=3, repeat_rate=0.0)
        ids = [
            import_source(
                session=session,
                storage=storage,
                project=project,
                source=synthesize_case(seed, lesion_count=10).source,
                meta=CaseMeta("synthetic", "CC0-1.0"),
            ).case_public_id
            for seed in seeds
        ]
        project.holdout_cases = [str(ids[-1])]
        session.add(project)
    assert project.id is not None
    return Setup(engine, storage, project.id, [str(i) for i in ids])


@pytest.fixture
def setup(settings_env: pytest.MonkeyPatch, pg_url: str, tmp_path: Path) -> Iterator[Setup]:
    """Settings for the in-process jobs (job_resources) on PostgreSQL and tmp storage."""
    settings_env.setenv("MSCROWD_DATABASE_URL", pg_url)
    settings_env.setenv("MSCROWD_STORAGE_URL", (tmp_path / "storage").as_uri())
    settings_env.setenv("MSCROWD_ML_DEVICE", "cpu")
    get_settings.cache_clear()
    job_resources.cache_clear()
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    yield synthetic_project(engine, Storage(settings.storage_url), seeds=(1, 2))
    engine.dispose()
    job_resources.cache_clear()
