"""Login throttling: growing delays per address, account and device; no lock on the owner;
the same answers for unknown and known emails; bounded password hashing; sign-up limits."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth import throttle
from backend.auth.deps import DEVICE_COOKIE
from backend.auth.models import AuthThrottle
from backend.core.config import Settings, get_settings
from backend.core.errors import ServiceBusy
from backend.core.security import HashingGate
from backend.core.timeutil import utcnow
from backend.main import create_app
from tests.factories import PASSWORD, signup

WRONG = "not the password"


@pytest.fixture
def app_client(migrated_engine: Engine, app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, engine=migrated_engine)) as client:
        yield client


def _attempts(client: TestClient, email: str, count: int) -> list[tuple[int, str]]:
    answers = []
    for _ in range(count):
        response = client.post("/api/auth/login", json={"email": email, "password": WRONG})
        answers.append((response.status_code, response.json()["detail"].split(";")[0]))
    return answers


def test_delays_start_after_the_free_failures_and_double_up_to_the_cap() -> None:
    cap = timedelta(minutes=15)
    delays = [throttle.delay_after(n, 5, cap).total_seconds() for n in range(1, 18)]
    assert delays[:4] == [0, 0, 0, 0]
    assert delays[4:9] == [1, 2, 4, 8, 16]
    assert delays[-1] == cap.total_seconds()
    assert throttle.delay_after(10**6, 5, cap) == cap  # no overflow, however many


def test_guessing_throttles_the_account_for_new_browsers_but_not_the_owners(
    app_client: TestClient, migrated_engine: Engine
) -> None:
    signup(app_client, "owner@example.org")  # this browser is now a trusted device
    assert DEVICE_COOKIE in app_client.cookies
    app_client.post("/api/auth/logout")
    with TestClient(app_client.app) as attacker:
        answers = _attempts(attacker, "owner@example.org", 7)
        # Five free failures, then the account waits for browsers that never signed in to it.
        assert answers[:5] == [(401, "Wrong login name or password")] * 5
        assert answers[6][0] == 429
        refused = attacker.post(
            "/api/auth/login", json={"email": "owner@example.org", "password": PASSWORD}
        )
        assert refused.status_code == 429  # even the right password waits on this browser
        assert int(refused.headers["Retry-After"]) >= 1
    # The owner's own browser is counted on its device key and signs in at once.
    ok = app_client.post(
        "/api/auth/login", json={"email": "owner@example.org", "password": PASSWORD}
    )
    assert ok.status_code == 200, ok.text
    with Session(migrated_engine) as session:
        keys = {row.key for row in session.exec(select(AuthThrottle)).all()}
    # The attacker stays throttled: the owner's sign-in does not reset the account's count.
    assert keys == {
        throttle.address_key("testclient"),
        throttle.signup_key("testclient"),
        throttle.account_key("owner@example.org"),
    }


def test_unknown_and_known_emails_get_the_same_answers(app_client: TestClient) -> None:
    signup(app_client, "known@example.org")
    with TestClient(app_client.app) as one, TestClient(app_client.app) as other:
        known = _attempts(one, "known@example.org", 7)
        unknown = _attempts(other, "nobody@example.org", 7)
    statuses = [status for status, _ in known]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    assert known == unknown


def test_one_address_guessing_many_accounts_is_slowed_down(
    migrated_engine: Engine, app_settings: Settings
) -> None:
    settings = app_settings.model_copy(update={"login_free_failures_address": 3})
    with TestClient(create_app(settings, engine=migrated_engine)) as client:
        answers = [
            client.post("/api/auth/login", json={"email": f"u{i}@example.org", "password": WRONG})
            for i in range(5)
        ]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[4].status_code == 429


def test_failures_are_forgotten_after_the_window(migrated_engine: Engine) -> None:
    policy = throttle.Policy(free_account=2, window=timedelta(hours=1))
    key = throttle.account_key("w@example.org")
    start = utcnow()
    with Session(migrated_engine) as session:
        for minute in range(3):
            now = start + timedelta(minutes=minute)
            throttle.record_failure(session, key, free=2, policy=policy, now=now)
        assert throttle.wait_seconds(session, [key], start + timedelta(minutes=2)) == 2
        later = start + timedelta(hours=2)
        assert throttle.wait_seconds(session, [key], later) == 0
        assert throttle.record_failure(session, key, free=2, policy=policy, now=later) == (
            timedelta(0)
        )
        session.commit()


def test_prune_deletes_only_rows_that_no_longer_count(
    migrated_engine: Engine, settings_env: pytest.MonkeyPatch, db_url: str
) -> None:
    policy = throttle.Policy(free_account=1, window=timedelta(hours=24))
    now = utcnow()
    old, recent = now - timedelta(hours=25), now - timedelta(hours=23)
    keys = {
        "stale": throttle.account_key("stale@example.org"),
        "recent": throttle.account_key("recent@example.org"),
        "still-waiting": throttle.address_key("10.0.0.9"),
        "stale-signup": throttle.signup_key("10.0.0.8"),
    }
    with Session(migrated_engine) as session:
        throttle.record_failure(session, keys["stale"], free=5, policy=policy, now=old)
        throttle.record_failure(session, keys["recent"], free=5, policy=policy, now=recent)
        throttle.take(session, keys["stale-signup"], limit=3, window=timedelta(hours=1), now=old)
        for _ in range(12):  # a wait past the cap's end: 15 minutes from an old failure...
            throttle.record_failure(session, keys["still-waiting"], free=1, policy=policy, now=old)
        waiting = session.get(AuthThrottle, keys["still-waiting"])
        assert waiting is not None
        waiting.blocked_until = now + timedelta(minutes=5)  # ...made to end after ``now``
        session.add(waiting)
        session.commit()
    with Session(migrated_engine) as session:
        assert throttle.prune(session, policy, now) == 2
        session.commit()
        left = set(session.exec(select(AuthThrottle.key)).all())
    assert left == {keys["recent"], keys["still-waiting"]}
    # The periodic job prunes with the settings' policy (24 h by default): the rest go
    # once their time has passed; a second run finds nothing.
    from backend.worker import prune_throttle

    with Session(migrated_engine) as session:
        row = session.get(AuthThrottle, keys["still-waiting"])
        assert row is not None
        row.blocked_until = old
        session.add(row)
        session.commit()
    settings_env.setenv("MSCROWD_DATABASE_URL", db_url)
    get_settings.cache_clear()
    assert prune_throttle() == 1
    assert prune_throttle() == 0


def test_hashing_gate_bounds_work_and_answers_busy_beyond_its_queue() -> None:
    gate = HashingGate(slots=1, queue=1, timeout=0.2)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            held.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    held.wait(5)
    with pytest.raises(ServiceBusy), gate.slot():  # waited 0.2 s for the only slot
        pass
    release.set()
    worker.join(5)
    with gate.slot():  # free again
        pass
    full = HashingGate(slots=1, queue=0, timeout=5)
    with full.slot(), pytest.raises(ServiceBusy), full.slot():  # no waiting room at all
        pass


def test_login_answers_503_when_password_checks_are_saturated(
    migrated_engine: Engine, app_settings: Settings
) -> None:
    settings = app_settings.model_copy(
        update={"password_hash_concurrency": 1, "password_hash_queue": 0}
    )
    with TestClient(create_app(settings, engine=migrated_engine)) as client:
        gate: HashingGate = client.app.state.hashing  # type: ignore[attr-defined]
        with gate.slot():
            busy = client.post("/api/auth/login", json={"email": "a@b.org", "password": WRONG})
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        # A refused attempt is not counted as a failure.
        assert (
            client.post("/api/auth/login", json={"email": "a@b.org", "password": WRONG}).status_code
            == 401
        )


def test_signups_per_address_are_limited(migrated_engine: Engine, app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"signups_per_address_per_hour": 2})
    with TestClient(create_app(settings, engine=migrated_engine)) as client:
        for n in range(2):
            signup(client, f"s{n}@example.org")
        refused = client.post(
            "/api/auth/signup", json={"email": "s9@example.org", "password": PASSWORD}
        )
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600


def test_signups_from_one_ipv6_subscriber_share_one_key() -> None:
    """Rotating through a /64 (one subscriber's addresses) makes no new sign-ups; IPv4
    addresses (often a whole school behind NAT) are counted one by one."""
    from backend.auth.throttle import signup_key

    assert signup_key("2001:db8::1") == signup_key("2001:db8::abcd:ef01:2345:6789")
    assert signup_key("2001:db8::1") != signup_key("2001:db8:0:1::1")
    assert signup_key("10.0.0.1") != signup_key("10.0.0.2")
    assert signup_key("::ffff:10.0.0.1") == signup_key("10.0.0.1")
