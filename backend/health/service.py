"""Health checks: can we reach the database, and is its schema the one this code needs?"""

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend import __version__
from backend.core.migrations import current_revision, head_revision
from backend.health.schemas import DatabaseHealth, HealthRead


def check_database(engine: Engine) -> DatabaseHealth:
    """Read the schema revision; that one query also proves the database answers."""
    report = DatabaseHealth(
        dialect=engine.dialect.name,
        name=engine.url.database,
        reachable=False,
        head=head_revision(),
    )
    try:
        report.revision = current_revision(engine)
    except SQLAlchemyError as exc:
        # The class name says what failed without echoing connection details.
        report.error = type(exc).__name__
        return report
    report.reachable = True
    report.schema_current = report.revision == report.head
    return report


def check(engine: Engine) -> HealthRead:
    """The whole health report."""
    database = check_database(engine)
    if not database.reachable:
        status = "unavailable"
    elif not database.schema_current:
        status = "degraded"
    else:
        status = "ok"
    return HealthRead(status=status, version=__version__, database=database)
