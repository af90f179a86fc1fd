"""One typed settings object for the whole backend, read from ``MSCROWD_*`` variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-in-production"


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``MSCROWD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MSCROWD_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    # Folder for the embedded default's files (SQLite database, stored images).
    data_dir: Path = Path("var")
    # Empty means the embedded default: a SQLite file inside data_dir.
    database_url: str = ""
    # Celery broker; empty means the embedded default, a SQLite-backed broker that needs no server.
    broker_url: str = ""
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = 8000

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_unsafe(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'mscrowd.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"
        if self.environment == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "MSCROWD_SECRET_KEY is still the development default; "
                "set a long random value before running in production"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
