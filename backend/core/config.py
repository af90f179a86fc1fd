"""One typed settings object for the whole backend, read from ``MSCROWD_*`` variables."""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-in-production"


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``MSCROWD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MSCROWD_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    # Folder for the embedded default's files (SQLite database, stored images).
    data_dir: Path = Path("var")
    # Where people reach the app (release metadata points there).
    public_url: str = "http://localhost:8000"
    # Empty means the embedded default: a SQLite file inside data_dir.
    database_url: str = ""
    # Celery broker; empty means the embedded default, a SQLite-backed broker that needs no server.
    broker_url: str = ""
    # Celery result store; empty means Redis when the broker is Redis, else a SQLite file.
    result_backend: str = ""
    # Whether `mscrowd serve` also starts a worker process; unset means "when the broker is
    # the embedded one".
    embedded_worker: bool | None = None
    # fsspec URL of image, mask and volume storage (file://, s3://, memory://, ...); empty means
    # a folder inside data_dir.
    storage_url: str = ""
    # The ML worker's device (``mscrowd worker --device``): auto = CUDA when there is one.
    ml_device: Literal["auto", "cpu", "cuda"] = "auto"
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = 8000
    # Session cookies are sent over HTTPS only; on by default in production.
    cookie_secure: bool | None = None
    session_hours: float = Field(default=24 * 14, gt=0)
    # How long a volunteer holds a task before it returns to the pool.
    lease_seconds: int = Field(default=15 * 60, gt=0)
    # Largest accepted encoded mask (PNG bytes or RLE runs), a guard against abuse.
    max_mask_bytes: int = Field(default=512 * 1024, gt=0)
    # Database connections per server process (pool plus overflow); with --workers N the total
    # N x (pool + overflow) must stay under PostgreSQL's max_connections.
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # API requests inside one process at once; empty means db_pool_size. Beyond
    # it requests wait in arrival order (at most request_queue of them, request_wait_seconds
    # each), then get 503 with Retry-After.
    max_concurrent_requests: int | None = Field(default=None, ge=1)
    request_queue: int = Field(default=1000, ge=0)
    request_wait_seconds: float = Field(default=10.0, gt=0)
    # How long an idle HTTP connection stays open. Volunteers pause between tasks for tens of
    # seconds; uvicorn's 5 s default made them reconnect each time, and a request sent just as
    # the server closed the connection failed in transit.
    keep_alive_seconds: int = Field(default=75, ge=1)
    # Add a Server-Timing header (time queued for admission, time in the app) to API answers;
    # for load tests and operators (bench/load.py turns it on).
    server_timing: bool = False
    # Proxy addresses whose X-Forwarded-For/-Proto uvicorn trusts ("*" for any); empty trusts
    # none, so a client cannot pick its own address for the per-address login throttle.
    forwarded_allow_ips: str = ""

    # Password hashing (argon2id, 64 MiB each): hashes run at once, callers that may wait, and
    # how long they wait before a 503.
    password_hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    password_hash_queue: int = Field(default=32, ge=0)
    password_hash_wait_seconds: float = Field(default=10.0, gt=0)
    # Login throttling: failures allowed before delays start, per account (from browsers that
    # never signed in to it) and per client address; delays then double from 1 s up to the cap.
    # Failures older than the window are forgotten.
    login_free_failures_account: int = Field(default=5, ge=1)
    login_free_failures_address: int = Field(default=20, ge=1)
    login_free_failures_device: int = Field(default=10, ge=1)
    login_max_delay_seconds: int = Field(default=15 * 60, ge=1)
    login_failure_window_hours: float = Field(default=24.0, gt=0)
    # Sign-ups per client address per hour.
    signups_per_address_per_hour: int = Field(default=20, ge=1)
    # Answers one volunteer may submit per minute and per hour (``gamification.limits``; an
    # honest rater, at the spam rule's 1.5 s an answer at the fastest, stays under both).
    submits_per_minute: int = Field(default=60, ge=1)
    submits_per_hour: int = Field(default=1800, ge=1)
    # Active bearer tokens one account may hold.
    max_tokens_per_user: int = Field(default=20, ge=1)
    # Pooled fusion rates are refitted (``fusion.fuse_project``, sent by the beat worker's
    # ``fusion.refresh_rates``) once this many crowd tasks were fused complete since a
    # project's latest project-wide run.
    fuse_project_every: int = Field(default=50, ge=1)
    # Problem reports one account may file per hour (and one per task, always).
    reports_per_user_per_hour: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_unsafe(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'mscrowd.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"
        if not self.result_backend:
            if self.broker_url.startswith(("redis://", "rediss://")):
                self.result_backend = self.broker_url
            else:
                self.result_backend = f"db+sqlite:///{self.data_dir / 'results.sqlite'}"
        if self.embedded_worker is None:
            self.embedded_worker = self.broker_is_embedded
        if not self.storage_url:
            self.storage_url = (self.data_dir / "storage").resolve().as_uri()
        if self.cookie_secure is None:
            self.cookie_secure = self.environment == "production"
        if self.environment == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "MSCROWD_SECRET_KEY is still the development default; "
                "set a long random value before running in production"
            )
        return self

    @property
    def broker_is_embedded(self) -> bool:
        """True for the serverless SQLite broker of the one-command demo."""
        return self.broker_url.startswith("sqla+")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
