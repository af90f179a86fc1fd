"""The task row's slot columns agree with counting its assignments, at any moment.

``refresh_slots`` replaces a count over assignments in every queue query (issue 18), so it is
checked against that count written plainly in Python, over random sets of leases and answers
and at probe times before, at and after every expiry.
"""

import random
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, update
from sqlmodel import Session

from backend.auth.models import User
from backend.core.db import table_of
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.tasks.models import Assignment, AssignmentState, Task, TaskState
from backend.tasks.slots import has_free_slot, refresh_slots
from tests.factories import create_tasks

RATERS, TASKS, CASES = 6, 3, 60


def _counted_free(
    required: int, rows: list[tuple[AssignmentState, datetime]], at: datetime
) -> bool:
    """The definition: slots are held by answers and by leases that have not expired."""
    held = sum(
        1
        for state, expires in rows
        if state is AssignmentState.submitted or (state is AssignmentState.active and expires > at)
    )
    return held < required


def test_slot_columns_match_counting_assignments(migrated_engine: Engine, storage: Storage) -> None:
    rng = random.Random(18)
    base = utcnow().replace(microsecond=0)
    with Session(migrated_engine) as session:
        # Several tasks at once: each task's columns must count its own assignments only.
        tasks = create_tasks(session, storage, count=TASKS, required_labels=1)
        users = [
            User(email=f"s{i}@example.org", display_name=f"s{i}", password_hash="x")
            for i in range(RATERS)
        ]
        session.add_all(users)
        session.flush()
        checked = 0
        for _case in range(CASES):
            session.execute(table_of(Assignment).delete())
            drawn = {}
            for task in tasks:
                required = rng.randint(1, 4)
                rows = [
                    (
                        rng.choice([AssignmentState.active, AssignmentState.submitted]),
                        base + timedelta(seconds=rng.choice([-60, -1, 0, 5, 30, 30, 90])),
                    )
                    for _ in range(rng.randint(0, RATERS))
                ]
                drawn[task.id] = (required, rows)
                session.execute(
                    update(Task)
                    .where(Task.id == task.id)  # type: ignore[arg-type]
                    .values(required_labels=required, state=TaskState.open)
                )
                if rows:
                    session.execute(
                        insert(Assignment),
                        [
                            {
                                "task_id": task.id,
                                "user_id": user.id,
                                "state": state,
                                "leased_at": base - timedelta(seconds=120),
                                "lease_expires_at": expires,
                            }
                            for user, (state, expires) in zip(users, rows, strict=False)
                        ],
                    )
            for task_id, (required, rows) in drawn.items():
                assert task_id is not None
                slots = refresh_slots(session, task_id)
                submitted = sum(1 for state, _ in rows if state is AssignmentState.submitted)
                assert slots.submitted_labels == submitted
                complete = submitted >= required
                assert slots.state is (TaskState.complete if complete else TaskState.open)
                for offset in (-61, -60, -1, 0, 1, 5, 29, 30, 31, 90, 91):
                    at = base + timedelta(seconds=offset)
                    expected = _counted_free(required, rows, at)
                    free = has_free_slot(slots.state, slots.full_until, at)
                    assert free is expected, (required, rows, offset)
                    checked += 1
        assert checked == CASES * TASKS * 11


def test_the_queue_is_walked_in_index_order_on_a_new_table(pg_url: str, storage: Storage) -> None:
    """Issue 19 regression: right after a bulk load, before autovacuum gathered statistics,
    PostgreSQL sorted every open task on each lease (50 ms at 13,000 tasks under load). An
    import refreshes the statistics; with them the queue index is walked and stops early."""
    from backend.core.db import create_db_engine, refresh_statistics
    from backend.core.migrations import upgrade
    from backend.tasks.queue import candidate_statement

    engine = create_db_engine(pg_url)
    upgrade(engine)
    with Session(engine) as session:
        (first,) = create_tasks(session, storage, count=1)
        more = [{"project_id": first.project_id, "slice_id": first.slice_id}] * 3000
        session.execute(insert(table_of(Task)), more)
        session.commit()
    refresh_statistics(engine, "slices", "tasks")
    with Session(engine) as session:
        statement = candidate_statement(False, True, False)
        compiled = statement.compile(dialect=engine.dialect)
        params = {**compiled.params, "user": 1, "now": utcnow(), "want": True}
        plan = "\n".join(
            row[0] for row in session.connection().exec_driver_sql(f"EXPLAIN {compiled}", params)
        )
    engine.dispose()
    assert "ix_tasks_open_queue" in plan, plan
    assert "Sort" not in plan, plan
