"""Alembic from code: upgrade, downgrade and revision checks for a given engine."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from backend.core.errors import SchemaNotCurrent

REPO_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_DIR = REPO_ROOT / "alembic"


def alembic_config() -> Config:
    """Alembic configuration pointing at the repository's ``alembic/`` folder."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for migrating: on PostgreSQL a failed migration leaves
    the schema as it was. On SQLite, foreign keys are off meanwhile and checked at the end:
    batch mode rebuilds a table by copying it and dropping the original, and with foreign keys
    on that drop would cascade and delete every referencing row. (The pragma only takes effect
    outside a transaction.)"""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _run(command_fn: Callable[[Config, str], None], engine: Engine, revision: str) -> None:
    config = alembic_config()
    with migration_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command_fn(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` up to ``revision``."""
    _run(command.upgrade, engine, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the database behind ``engine`` down to ``revision``."""
    _run(command.downgrade, engine, revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision this code ships (read once: the scripts do not change at run time)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_current(engine: Engine) -> str:
    """Return the schema revision, or raise ``SchemaNotCurrent`` when it is not the head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has never been migrated" if current is None else f"is at revision {current}"
        raise SchemaNotCurrent(
            f"The database ({engine.url.render_as_string(hide_password=True)}) {state}, "
            f"but this code needs revision {head}. Run `mscrowd migrate` first."
        )
    assert current is not None
    return current
