"""The job outbox: a deferred job is sent only after its transaction commits, exactly the
jobs of committed transactions are sent, and what could not be sent is relayed later."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.core.db import transaction
from backend.core.outbox import OutboxJob, Relay, defer


class Broker:
    """Records what is sent; can be made to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.down = False

    def __call__(self, name: str, args: list[Any]) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.sent.append((name, args))


def _rows(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(OutboxJob)).one()


def test_deferred_jobs_are_sent_after_the_commit_and_forgotten(migrated_engine: Engine) -> None:
    broker = Broker()
    relay = Relay(migrated_engine, broker)
    with transaction(migrated_engine, relay) as session:
        defer(session, "fusion.fuse_task", 7)
        defer(session, "fusion.fuse_task", 8)
        # Not before the commit: a worker must find the committed task.
        assert broker.sent == []
        assert session.exec(select(func.count()).select_from(OutboxJob)).one() == 2
    assert broker.sent == [("fusion.fuse_task", [7]), ("fusion.fuse_task", [8])]
    assert _rows(migrated_engine) == 0


def _defer_then_fail(engine: Engine, relay: Relay) -> None:
    with transaction(engine, relay) as session:
        defer(session, "fusion.fuse_task", 7)
        raise RuntimeError("the request failed after deferring")


def test_a_rolled_back_transaction_sends_nothing(migrated_engine: Engine) -> None:
    broker = Broker()
    with pytest.raises(RuntimeError):
        _defer_then_fail(migrated_engine, Relay(migrated_engine, broker))
    assert broker.sent == []
    assert _rows(migrated_engine) == 0


def test_jobs_the_broker_refused_are_relayed_later_once(migrated_engine: Engine) -> None:
    broker = Broker()
    relay = Relay(migrated_engine, broker)
    broker.down = True
    with transaction(migrated_engine, relay) as session:  # the commit still succeeds
        defer(session, "fusion.fuse_task", 7)
    with transaction(migrated_engine) as session:  # no relay: a CLI or a job's transaction
        defer(session, "fusion.fuse_task", 9)
    assert broker.sent == []
    assert _rows(migrated_engine) == 2
    # Young rows are left to the process that committed them.
    broker.down = False
    assert relay.relay() == 0
    assert relay.relay(older_than=timedelta(0)) == 2
    assert broker.sent == [("fusion.fuse_task", [7]), ("fusion.fuse_task", [9])]
    assert relay.relay(older_than=timedelta(0)) == 0  # sent once
    assert _rows(migrated_engine) == 0


def test_a_failed_relay_keeps_its_rows(migrated_engine: Engine) -> None:
    broker = Broker()
    with transaction(migrated_engine) as session:
        defer(session, "fusion.fuse_project", 3)
    broker.down = True
    with pytest.raises(ConnectionError):
        Relay(migrated_engine, broker).relay(older_than=timedelta(0))
    assert _rows(migrated_engine) == 1
    broker.down = False
    assert Relay(migrated_engine, broker).relay(older_than=timedelta(0)) == 1
    assert broker.sent == [("fusion.fuse_project", [3])]
