"""Fixtures for API tests: a TestClient on a migrated database of each dialect."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.core.config import Settings
from backend.main import create_app


@pytest.fixture
def client(migrated_engine: Engine, app_settings: Settings) -> Iterator[TestClient]:
    """An API client (with its own cookie jar) on a migrated database."""
    with TestClient(create_app(app_settings, engine=migrated_engine)) as test_client:
        yield test_client
