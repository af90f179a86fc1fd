"""Latency of leasing a task (``POST /api/tasks/next``'s service) on PostgreSQL as the queue grows.

Anchor, in the same run: the same query after dropping ``ix_tasks_open_queue``, i.e. the plan
that counts slots for every open task before sorting. Usage:

    .venv/bin/python bench/bench_next_task.py [--tasks 20000] [--calls 60]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import statistics
import time
import uuid

from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

from backend.auth import service as auth
from backend.auth.models import User
from backend.core.db import create_db_engine
from backend.core.migrations import upgrade
from backend.tasks import service


def _seed(engine: Engine, tasks: int, raters: int) -> list[User]:
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO projects (id, name, description, min_labels, gold_rate, created_at) "
                "VALUES (1, 'bench', '', 3, 0.1, now())"
            )
        )
        c.execute(
            text(
                "INSERT INTO cases (id, project_id, public_id, source_sha256, source, licence, "
                "consent_scope, created_at) VALUES (1, 1, 'c', 'x', 'bench', 'CC0', 'open', now())"
            )
        )
        c.execute(
            text(
                'INSERT INTO slices (case_id, axis, "index", crop_x0, crop_y0, crop_x1, crop_y1, '
                "image_keys, brain_fraction) SELECT 1, 'axial', g, 0, 0, 10, 10, '{}', 0.5 "
                "FROM generate_series(0, :n - 1) g"
            ),
            {"n": tasks},
        )
        c.execute(
            text(
                "INSERT INTO tasks (project_id, slice_id, kind, required_labels, priority, state, "
                "created_at) SELECT 1, id, 'normal', 3, random(), 'open', now() FROM slices"
            )
        )
        c.execute(text("ANALYZE"))
    with Session(engine, expire_on_commit=False) as session:
        users = [
            auth.create_user(session=session, email=f"r{i}@bench.org", password="x" * 12)
            for i in range(raters)
        ]
        session.commit()
    return users


def _measure(engine: Engine, users: list[User], calls: int) -> list[float]:
    times = []
    for i in range(calls):
        with Session(engine) as session:
            start = time.perf_counter()
            # Leases of 0 s lapse at once, so the queue keeps its size between calls.
            service.next_task(session=session, user=users[i % len(users)], lease_seconds=0)
            session.commit()
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_db_engine(f"{args.url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        users = _seed(engine, args.tasks, raters=20)
        rows = [("mscrowd (ix_tasks_open_queue)", _measure(engine, users, args.calls))]
        with engine.begin() as c:
            c.execute(text("DROP INDEX ix_tasks_open_queue"))
        rows.append(("anchor: no queue index", _measure(engine, users, args.calls)))
        print(f"next_task on PostgreSQL, {args.tasks} open tasks, {args.calls} calls each")
        print(f"{'variant':<32}{'median ms':>12}{'p95 ms':>10}")
        for name, times in rows:
            p95 = sorted(times)[int(len(times) * 0.95) - 1]
            print(f"{name:<32}{statistics.median(times):>12.1f}{p95:>10.1f}")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
