"""The audit log's triggers (migration 0018): any UPDATE or DELETE of a row fails, on
PostgreSQL and SQLite alike; the app can only add entries."""

MESSAGE = "audit_log is append-only"

POSTGRESQL_UP = [
    f"""
    CREATE FUNCTION audit_log_frozen() RETURNS trigger AS $$
    BEGIN
      RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'restrict_violation';
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_log_frozen BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_frozen()
    """,
    # TRUNCATE skips row triggers: refuse it too.
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_frozen()
    """,
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "DROP TRIGGER IF EXISTS audit_log_frozen ON audit_log",
    "DROP FUNCTION IF EXISTS audit_log_frozen()",
]

SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
    """,
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
    "DROP TRIGGER IF EXISTS audit_log_no_update",
]


def statements(dialect: str, *, up: bool) -> list[str]:
    """The DDL that creates (``up``) or drops the triggers on ``dialect``."""
    if dialect == "postgresql":
        return POSTGRESQL_UP if up else POSTGRESQL_DOWN
    if dialect == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    raise ValueError(f"no audit triggers for the {dialect} dialect")
