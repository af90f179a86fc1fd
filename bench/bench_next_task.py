"""Latency of leasing a task (``POST /api/tasks/next``'s service) on PostgreSQL as the queue grows.

The queue holds ``--tasks`` open tasks over ``--cases`` cases (slices of a case interleaved in
id order, random priorities). Each call leases a new task from the queue (the lease is then
skipped, untimed, so the next call walks the queue again rather than renewing it), and the
share of calls that got a task from the same case as the rater's previous one is printed.
Anchor, in the same run: the same calls after dropping ``ix_tasks_open_queue``, i.e. the plan
that counts slots for every open task before sorting. To compare two versions of the code in
one session, run this script with ``PYTHONPATH`` at the other version's tree. Usage:

    .venv/bin/python bench/bench_next_task.py [--tasks 20000] [--cases 100] [--calls 60]
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


def _seed(engine: Engine, tasks: int, cases: int, raters: int) -> list[User]:
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
                "consent_crowd_viewing, created_at) SELECT g, 1, 'c' || g, 'x' || g, 'bench', "
                "'CC0', true, now() FROM generate_series(1, :cases) g"
            ),
            {"cases": cases},
        )
        c.execute(
            text(
                'INSERT INTO slices (case_id, axis, "index", crop_x0, crop_y0, crop_x1, crop_y1, '
                "image_keys, brain_fraction) SELECT 1 + g % :cases, 'axial', g / :cases, 0, 0, "
                "10, 10, '{}', 0.5 FROM generate_series(0, :n - 1) g"
            ),
            {"n": tasks, "cases": cases},
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


def _measure(engine: Engine, users: list[User], calls: int) -> tuple[list[float], float]:
    """Lease times (ms) and the share of leases from the rater's previous task's case."""
    times, last, same, pairs = [], {}, 0, 0
    for i in range(calls):
        user = users[i % len(users)]
        assert user.id is not None
        with Session(engine) as session:
            start = time.perf_counter()
            lease = service.next_task(session=session, user=user, lease_seconds=600)
            session.commit()
            times.append((time.perf_counter() - start) * 1000)
            assert lease is not None
            case = session.execute(
                text("SELECT case_id FROM slices WHERE id = :s"), {"s": lease.task.slice_id}
            ).scalar_one()
            if user.id in last:
                pairs += 1
                same += case == last[user.id]
            last[user.id] = case
            # Skipped, untimed: the next call walks the queue instead of renewing this lease.
            service.release(session=session, user_id=user.id, lease_id=lease.id)
            session.commit()
    return times, same / max(pairs, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_db_engine(f"{args.url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        users = _seed(engine, args.tasks, args.cases, raters=20)
        _measure(engine, users, 20)  # warm-up: prepared statements, caches
        rows = [("mscrowd (ix_tasks_open_queue)", *_measure(engine, users, args.calls))]
        with engine.begin() as c:
            c.execute(text("DROP INDEX ix_tasks_open_queue"))
        rows.append(("anchor: no queue index", *_measure(engine, users, args.calls)))
        print(
            f"next_task on PostgreSQL, {args.tasks} open tasks in {args.cases} cases, "
            f"{args.calls} calls each, code at {service.__file__}"
        )
        print(f"{'variant':<32}{'median ms':>12}{'p95 ms':>10}{'same case as previous':>24}")
        for name, times, same in rows:
            p95 = sorted(times)[int(len(times) * 0.95) - 1]
            print(f"{name:<32}{statistics.median(times):>12.1f}{p95:>10.1f}{same:>24.0%}")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
