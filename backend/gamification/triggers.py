"""The ledger's database triggers, per dialect (created by migration 0017).

- After each insert into ``points_ledger``, its points are added to the user's
  ``point_totals`` row (made on the first entry, hidden from the boards when the profile
  opted out; a rater excluded before any points already has a hidden row, made by
  ``confirm.rater_changed``): the all-time total, the entry count, and
  the week's points, which start again at the entry's week when it is newer than the row's
  and stay as they are when it is older (a correction of an earlier week's points lowers the
  total, not this week's board).
- Any UPDATE of a ledger row fails, and so does any DELETE while its user exists: the ledger
  is append-only; only deleting the user (an account erased) takes their rows with it.

A submit thus writes one statement (the ledger row) and the total moves in its transaction.
"""

POSTGRESQL_UP = [
    """
    CREATE FUNCTION points_ledger_add() RETURNS trigger AS $$
    BEGIN
      INSERT INTO point_totals AS t
        (user_id, total, week, week_points, entries, hidden, updated_at)
      VALUES (
        NEW.user_id, NEW.points, NEW.week, NEW.points, 1,
        COALESCE((SELECT NOT leaderboard FROM reward_profiles WHERE user_id = NEW.user_id), false),
        NEW.created_at
      )
      ON CONFLICT (user_id) DO UPDATE SET
        total = t.total + EXCLUDED.total,
        week_points = CASE
          WHEN t.week = EXCLUDED.week THEN t.week_points + EXCLUDED.week_points
          WHEN t.week > EXCLUDED.week THEN t.week_points
          ELSE EXCLUDED.week_points END,
        week = GREATEST(t.week, EXCLUDED.week),
        entries = t.entries + 1,
        updated_at = EXCLUDED.updated_at;
      RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER points_ledger_add AFTER INSERT ON points_ledger
    FOR EACH ROW EXECUTE FUNCTION points_ledger_add()
    """,
    """
    CREATE FUNCTION points_ledger_frozen() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id) THEN
        RETURN OLD;
      END IF;
      RAISE EXCEPTION 'points_ledger is append-only: add a correction entry instead'
        USING ERRCODE = 'restrict_violation';
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER points_ledger_frozen BEFORE UPDATE OR DELETE ON points_ledger
    FOR EACH ROW EXECUTE FUNCTION points_ledger_frozen()
    """,
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS points_ledger_frozen ON points_ledger",
    "DROP FUNCTION IF EXISTS points_ledger_frozen()",
    "DROP TRIGGER IF EXISTS points_ledger_add ON points_ledger",
    "DROP FUNCTION IF EXISTS points_ledger_add()",
]

SQLITE_UP = [
    """
    CREATE TRIGGER points_ledger_add AFTER INSERT ON points_ledger
    BEGIN
      INSERT INTO point_totals (user_id, total, week, week_points, entries, hidden, updated_at)
      VALUES (
        NEW.user_id, NEW.points, NEW.week, NEW.points, 1,
        COALESCE((SELECT NOT leaderboard FROM reward_profiles WHERE user_id = NEW.user_id), 0),
        NEW.created_at
      )
      ON CONFLICT (user_id) DO UPDATE SET
        total = total + excluded.total,
        week_points = CASE
          WHEN week = excluded.week THEN week_points + excluded.week_points
          WHEN week > excluded.week THEN week_points
          ELSE excluded.week_points END,
        week = MAX(week, excluded.week),
        entries = entries + 1,
        updated_at = excluded.updated_at;
    END
    """,
    """
    CREATE TRIGGER points_ledger_no_update BEFORE UPDATE ON points_ledger
    BEGIN
      SELECT RAISE(ABORT, 'points_ledger is append-only: add a correction entry instead');
    END
    """,
    """
    CREATE TRIGGER points_ledger_no_delete BEFORE DELETE ON points_ledger
    WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
    BEGIN
      SELECT RAISE(ABORT, 'points_ledger is append-only: add a correction entry instead');
    END
    """,
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS points_ledger_no_delete",
    "DROP TRIGGER IF EXISTS points_ledger_no_update",
    "DROP TRIGGER IF EXISTS points_ledger_add",
]


def statements(dialect: str, *, up: bool) -> list[str]:
    """The DDL that creates (``up``) or drops the triggers on ``dialect``."""
    if dialect == "postgresql":
        return POSTGRESQL_UP if up else POSTGRESQL_DOWN
    if dialect == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    raise ValueError(f"no ledger triggers for the {dialect} dialect")
