"""Settings: the embedded default, the MSCROWD_ prefix and the production secret check."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.core.config import Settings


@pytest.mark.usefixtures("settings_env")
def test_default_database_is_sqlite_under_data_dir(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'mscrowd.sqlite'}"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path / 'var' / 'broker.sqlite'}"
    assert settings.environment == "development"


def test_settings_read_prefixed_environment(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("MSCROWD_DATABASE_URL", "postgresql+psycopg://db/mscrowd")
    settings_env.setenv("MSCROWD_PORT", "9000")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://db/mscrowd"
    assert settings.port == 9000


def test_production_refuses_the_default_secret(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("MSCROWD_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="MSCROWD_SECRET_KEY"):
        Settings()
    settings_env.setenv("MSCROWD_SECRET_KEY", "a-long-random-production-value")
    assert Settings().environment == "production"
