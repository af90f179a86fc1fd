"""Migrations build the whole schema, match the models, and go down cleanly, on both dialects."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

import backend.models  # noqa: F401  (registers every table)
from backend.core.migrations import current_revision, downgrade, head_revision, upgrade

TABLES_0001 = {"users", "cases", "slices", "tasks", "annotations"}
TABLES = TABLES_0001 | {"projects", "volumes", "assignments", "credentials", "auth_throttle"}
TABLES |= {"gold_versions", "gold_scores", "repeat_scores", "rater_stats", "rater_actions"}
TABLES |= {"fusion_runs", "fusion_results", "job_outbox", "model_versions", "rounds"}
TABLES |= {"task_reports", "consensus_scores"}
TABLES |= {"slice_rejections"}
TABLES |= {"tutorial_slices", "lesson_completions", "qualification_attempts", "tutorial_items"}
TABLES |= {"points_ledger", "point_totals", "badge_awards", "reward_profiles"}
TABLES |= {"audit_log"}
TABLES |= {"withdrawn_cases", "releases", "release_files"}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_builds_every_table_and_downgrade_removes_them(db_engine: Engine) -> None:
    assert current_revision(db_engine) is None

    upgrade(db_engine)
    assert current_revision(db_engine) == head_revision()
    assert _tables(db_engine) == TABLES | {"alembic_version"}

    downgrade(db_engine, "0001")
    assert _tables(db_engine) == TABLES_0001 | {"alembic_version"}
    assert "project_id" not in {c["name"] for c in inspect(db_engine).get_columns("tasks")}

    downgrade(db_engine, "base")
    assert current_revision(db_engine) is None
    assert _tables(db_engine) == {"alembic_version"}

    # A second round trip proves the downgrade left nothing behind that blocks an upgrade.
    upgrade(db_engine)
    assert _tables(db_engine) == TABLES | {"alembic_version"}


def test_migrated_schema_matches_the_models(db_engine: Engine) -> None:
    upgrade(db_engine)
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_schema_enforces_its_constraints(db_engine: Engine) -> None:
    upgrade(db_engine)
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (id, name, description, min_labels, gold_rate, created_at) "
                "VALUES (1, 'p', '', 3, 0.1, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO cases (id, project_id, public_id, source_sha256, source, licence, "
                "created_at) "
                "VALUES (1, 1, 'c-1', 'abc', 'demo', 'CC-BY-4.0', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                'INSERT INTO slices (id, case_id, axis, "index", crop_x0, crop_y0, crop_x1, '
                "crop_y1, image_keys, brain_fraction) "
                "VALUES (1, 1, 'axial', 40, 0, 0, 10, 10, '{}', 0.5)"
            )
        )
    bad_rows = [
        # A task must ask for at least one label.
        "INSERT INTO tasks (project_id, slice_id, kind, required_labels, priority, state, "
        "created_at) VALUES (1, 1, 'normal', 0, 0, 'open', CURRENT_TIMESTAMP)",
        # A project needs at least one label per task, and a gold rate within 0..1.
        "INSERT INTO projects (name, description, min_labels, gold_rate, created_at) "
        "VALUES ('q', '', 0, 0.1, CURRENT_TIMESTAMP)",
        "INSERT INTO projects (name, description, min_labels, gold_rate, created_at) "
        "VALUES ('r', '', 3, 1.5, CURRENT_TIMESTAMP)",
        # An uncertain task may get more labels than the first round, never fewer.
        "INSERT INTO projects (name, description, min_labels, max_labels, gold_rate, "
        "created_at) VALUES ('s', '', 5, 4, 0.1, CURRENT_TIMESTAMP)",
        # The same source is imported into a project once.
        "INSERT INTO cases (project_id, public_id, source_sha256, source, licence, "
        "created_at) "
        "VALUES (1, 'c-2', 'abc', 'demo', 'CC-BY-4.0', CURRENT_TIMESTAMP)",
        # A slice belongs to an existing case.
        'INSERT INTO slices (case_id, axis, "index", crop_x0, crop_y0, crop_x1, crop_y1, '
        "image_keys, brain_fraction) VALUES (99, 'axial', 1, 0, 0, 10, 10, '{}', 0.5)",
        # The same slice of a case is stored once.
        'INSERT INTO slices (case_id, axis, "index", crop_x0, crop_y0, crop_x1, crop_y1, '
        "image_keys, brain_fraction) VALUES (1, 'axial', 40, 0, 0, 10, 10, '{}', 0.5)",
        # A crop box is never empty.
        'INSERT INTO slices (case_id, axis, "index", crop_x0, crop_y0, crop_x1, crop_y1, '
        "image_keys, brain_fraction) VALUES (1, 'axial', 41, 10, 0, 10, 10, '{}', 0.5)",
    ]
    for statement in bad_rows:
        with pytest.raises(IntegrityError), db_engine.begin() as connection:
            connection.execute(text(statement))


def test_0004_fills_the_slot_columns_from_existing_assignments(db_engine: Engine) -> None:
    upgrade(db_engine, "0003")
    with db_engine.begin() as connection:  # projects gained columns in 0005
        connection.execute(
            text(
                "INSERT INTO projects (id, name, description, redundancy, gold_rate, created_at) "
                "VALUES (1, 'p', '', 3, 0.1, CURRENT_TIMESTAMP)"
            )
        )
    with Session(db_engine) as session:
        # Cases as 0003 knew them (0016 added the tutorial flag the model has).
        session.execute(
            text(
                "INSERT INTO cases (id, project_id, public_id, source_sha256, source, licence, "
                "consent_scope, created_at) "
                "VALUES (1, 1, 'c', 'h', 's', 'CC0', 'open', CURRENT_TIMESTAMP)"
            )
        )
        case = SimpleNamespace(id=1)
        # Users as 0003 knew them (0010 added the consent columns the model has).
        for n in (1, 2, 3, 4):
            session.execute(
                text(
                    "INSERT INTO users (id, email, display_name, password_hash, role, "
                    f"is_active, created_at) VALUES ({n}, 'u{n}@example.org', 'u{n}', 'x', "
                    "'volunteer', true, CURRENT_TIMESTAMP)"
                )
            )
        users = [SimpleNamespace(id=n) for n in (1, 2, 3, 4)]
        # Slices as 0003 knew them (later revisions added columns the model has).
        for n in (1, 2, 3):
            session.execute(
                text(
                    'INSERT INTO slices (id, case_id, axis, "index", crop_x0, crop_y0, crop_x1, '
                    "crop_y1, image_keys, brain_fraction) "
                    f"VALUES ({n}, {case.id}, 'axial', {n}, 0, 0, 4, 4, '{{}}', 0.5)"
                )
            )
        session.commit()
        slices = [SimpleNamespace(id=n) for n in (1, 2, 3)]
        ids = [s.id for s in slices], [u.id for u in users], 1
    (slice_ids, user_ids, project_id) = ids
    with db_engine.begin() as c:
        for n, slice_id in zip((1, 2, 3), slice_ids, strict=True):
            c.execute(
                text(
                    "INSERT INTO tasks (id, project_id, slice_id, kind, required_labels, "
                    "priority, state, created_at) VALUES (:id, :p, :s, 'normal', 2, 0, 'open', "
                    ":at)"
                ),
                {"id": n, "p": project_id, "s": slice_id, "at": datetime.now(UTC)},
            )
        # Two slots each. Task 1: an answer and an unexpired lease (full); task 2: an answer;
        # task 3: a lease (free: each task counts its own answers only).
        later = datetime.now(UTC) + timedelta(days=1)
        rows = ((1, 0, "submitted"), (1, 1, "active"), (2, 2, "submitted"), (3, 3, "active"))
        for task, user, state in rows:
            c.execute(
                text(
                    "INSERT INTO assignments (task_id, user_id, state, leased_at, "
                    "lease_expires_at) VALUES (:t, :u, :state, :at, :until)"
                ),
                {
                    "t": task,
                    "u": user_ids[user],
                    "state": state,
                    "at": datetime.now(UTC),
                    "until": later,
                },
            )
    upgrade(db_engine)
    with db_engine.connect() as c:
        got = c.execute(
            text("SELECT id, submitted_labels, full_until IS NOT NULL FROM tasks ORDER BY id")
        ).all()
    assert [tuple(r) for r in got] == [(1, 1, True), (2, 1, False), (3, 0, False)]
