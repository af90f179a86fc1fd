"""Latency of the leaderboards and the rewards profile at scale, on PostgreSQL, through the API.

Seeds ``--volunteers`` volunteers (2 % opted out, 1 % suspended) and ``--entries`` ledger rows
spread over the last eight weeks (in bulk: the insert trigger is switched off for the seed and
the totals made from the ledger in one statement, as the trigger would have kept them), then
times, as a random volunteer each time, through the FastAPI app in process:

- ``GET /api/rewards/leaderboard?board=all`` and ``?board=week`` (first page, 20 rows, the
  caller's own rank wherever they stand), and a page deep in the board (offset 5,000);
- ``GET /api/rewards/me`` (totals, level, streak, badges judged) and ``/me/history``.

Anchors, in the same run: the same boards without the maintained totals (summed from the
ledger per request: ``GROUP BY user_id``, and the caller's rank from the same sums), and the
maintained-totals board with index scans switched off (``enable_indexscan`` and friends), i.e.
without its index.

    .venv/bin/python bench/leaderboard.py [--volunteers 100000] [--entries 5000000]
        [--calls 200] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.auth import tokens  # noqa: E402
from backend.auth.deps import SESSION_COOKIE  # noqa: E402
from backend.auth.models import User  # noqa: E402
from backend.core.config import Settings  # noqa: E402
from backend.core.db import create_db_engine  # noqa: E402
from backend.core.migrations import upgrade  # noqa: E402
from backend.core.timeutil import utcnow  # noqa: E402
from backend.gamification.ledger import week_of  # noqa: E402
from backend.main import create_app  # noqa: E402


def seed(engine: Engine, volunteers: int, entries: int) -> tuple[int, int]:
    """Volunteers and ledger rows in bulk; the user id range."""
    monday = week_of(utcnow())
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO users (display_name, password_hash, role, is_active, created_at,"
                " consent_version, consent_at) SELECT 'volunteer-' || g, 'x', 'volunteer', true,"
                " now(), '2026-11-25', now() FROM generate_series(1, :n) g"
            ),
            {"n": volunteers},
        )
        low, high = c.execute(text("SELECT min(id), max(id) FROM users")).one()
        c.execute(text("ALTER TABLE points_ledger DISABLE TRIGGER USER"))
        # The index is built once after the rows (13 minutes kept up row by row, 2 cores).
        c.execute(text("DROP INDEX ix_points_user_time"))
        # Skewed activity: a few volunteers do most of the work, as in every crowd.
        c.execute(
            text(
                "INSERT INTO points_ledger (user_id, reason, points, quality, week, created_at)"
                " SELECT :low + floor(:span * power(random(), 2))::int, 'gold',"
                " 1 + floor(random() * 10)::int, random(), w.week, w.week + interval '12 hours'"
                " FROM generate_series(1, :entries) g,"
                " LATERAL (SELECT (CAST(:monday AS date) - 7 * floor(random() * 8)::int) AS week"
                " WHERE g > 0) w"
            ),
            {"low": low, "span": high - low + 1, "entries": entries, "monday": monday},
        )
        c.execute(text("ALTER TABLE points_ledger ENABLE TRIGGER USER"))
        c.execute(text("CREATE INDEX ix_points_user_time ON points_ledger (user_id, created_at)"))
        c.execute(
            text(
                "INSERT INTO point_totals (user_id, total, week, week_points, entries, hidden,"
                " updated_at) SELECT user_id, sum(points), max(week),"
                " coalesce(sum(points) FILTER (WHERE week = (SELECT max(week) FROM points_ledger"
                " l2 WHERE l2.user_id = l.user_id)), 0), count(*), random() < 0.03, now()"
                " FROM points_ledger l GROUP BY user_id"
            )
        )
        c.execute(text("ANALYZE"))
    return int(low), int(high)


def anchor_sql(board: str, monday: object) -> tuple[str, str]:
    """The board and the caller's rank summed from the ledger (no maintained totals)."""
    where = "WHERE week = :monday" if board == "week" else ""
    sums = f"SELECT user_id, sum(points) AS points FROM points_ledger {where} GROUP BY user_id"
    top = (
        f"SELECT s.user_id, s.points, u.display_name FROM ({sums}) s JOIN users u"
        " ON u.id = s.user_id ORDER BY s.points DESC, s.user_id DESC LIMIT 20"
    )
    rank = (
        f"SELECT count(*) + 1 FROM ({sums}) s WHERE s.points >"
        f" (SELECT coalesce(sum(points), 0) FROM points_ledger WHERE user_id = :me"
        f" {'AND week = :monday' if board == 'week' else ''})"
    )
    return top, rank


def timed(calls: int, run: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(label: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"  {label:<58} p50 {statistics.median(times):8.1f}  p95 {p95:8.1f} ms  (n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volunteers", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=5_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--anchor-calls", type=int, default=10)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.url}?options=-csearch_path%3D{schema}"
    engine = create_db_engine(url)
    try:
        upgrade(engine)
        started = time.perf_counter()
        low, high = seed(engine, args.volunteers, args.entries)
        print(
            f"seeded {args.volunteers:,} volunteers and {args.entries:,} ledger entries in"
            f" {time.perf_counter() - started:.0f} s (PostgreSQL, schema {schema})"
        )
        app = create_app(Settings(database_url=url), engine=engine)
        client = TestClient(app)
        rng = random.Random(7)
        cookies: dict[int, str] = {}

        def as_someone() -> dict[str, str]:
            user_id = rng.randint(low, high)
            if user_id not in cookies:
                with Session(engine) as session:
                    user = session.get(User, user_id)
                    assert user is not None
                    secret, _ = tokens.open_session(session=session, user=user, hours=1)
                    session.commit()
                cookies[user_id] = secret
            return {"Cookie": f"{SESSION_COOKIE}={cookies[user_id]}"}

        def get(path: str) -> Callable[[], object]:
            def run() -> object:
                answer = client.get(path, headers=as_someone())
                assert answer.status_code == 200, answer.text
                return answer

            return run

        for _ in range(20):  # warm the caches and the sessions' code paths
            get("/api/rewards/leaderboard?board=all")()
        print("the product (maintained totals, partial indexes), through the API:")
        for label, path in [
            ("leaderboard all-time, first page + own rank", "/api/rewards/leaderboard?board=all"),
            ("leaderboard weekly, first page + own rank", "/api/rewards/leaderboard?board=week"),
            (
                "leaderboard all-time, offset 5,000",
                "/api/rewards/leaderboard?board=all&offset=5000",
            ),
            ("profile (GET /api/rewards/me)", "/api/rewards/me"),
            ("profile history (30 days)", "/api/rewards/me/history"),
        ]:
            show(label, timed(args.calls, get(path)))
        print("anchors, same data, same run:")
        monday = week_of(utcnow())
        with engine.connect() as c:
            for board in ("all", "week"):
                top, rank = anchor_sql(board, monday)

                def summed(top: str = top, rank: str = rank) -> None:
                    me = rng.randint(low, high)
                    c.execute(text(top), {"monday": monday}).all()
                    c.execute(text(rank), {"monday": monday, "me": me}).one()

                show(
                    f"{board} board summed from the ledger (SQL only)",
                    timed(args.anchor_calls, summed),
                )
            for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
                c.execute(text(f"SET {setting} = off"))
            c.commit()
        # The API again with its index unused (a session setting on every pooled connection).
        engine.dispose()
        off = "".join(
            f"%20-c{name}%3Doff"
            for name in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan")
        )
        slow = create_db_engine(url + off)
        client = TestClient(create_app(Settings(database_url=url), engine=slow))
        show(
            "leaderboard all-time via the API, index scans off",
            timed(args.anchor_calls * 3, get("/api/rewards/leaderboard?board=all")),
        )
        slow.dispose()
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
