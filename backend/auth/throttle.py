"""Throttling of password guessing and sign-up floods, with delays that grow per failure.

Nothing here locks an account outright. Failures are counted per key (see ``AuthThrottle``):
the client address, and either the account (for browsers that never signed in to it) or the
trusted device (a browser that did). After a key's free failures, each further failure makes
that key wait 1 s, then 2, 4, ... up to a cap. An attacker guessing one account from anywhere
soon waits minutes per guess; the owner's browser, which holds a device cookie from an earlier
sign-in, is counted on its own key and signs in as usual (OWASP's "device cookies").
"""

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from backend.auth.models import AuthThrottle
from backend.core.config import Settings
from backend.core.db import serialize_writers


@dataclass(frozen=True)
class Policy:
    """How many failures a key of each kind may make before delays start, and the delay cap."""

    free_account: int = 5
    free_address: int = 20
    free_device: int = 10
    max_delay: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        """The policy the ``MSCROWD_LOGIN_*`` settings describe."""
        return cls(
            free_account=settings.login_free_failures_account,
            free_address=settings.login_free_failures_address,
            free_device=settings.login_free_failures_device,
            max_delay=timedelta(seconds=settings.login_max_delay_seconds),
            window=timedelta(hours=settings.login_failure_window_hours),
        )


def account_key(email: str) -> str:
    """Key of an email address (hashed: the table never holds addresses, known or not)."""
    return "login:acct:" + hashlib.sha256(email.encode()).hexdigest()[:40]


def address_key(address: str) -> str:
    """Key of a client address for logins."""
    return f"login:addr:{address[:64]}"


def devices_prefix(user_id: int) -> str:
    """The start of every device key of ``user_id``."""
    return f"login:dev:{user_id}:"


def device_key(user_id: int, device_id: str) -> str:
    """Key of a browser that signed in to ``user_id`` before."""
    return devices_prefix(user_id) + device_id[:40]


def signup_key(address: str) -> str:
    """Key of a client address for sign-ups: an IPv6 address by its /64 (what one subscriber
    is given, so rotating through it makes no new sign-ups), IPv4 as it is (one address is
    often a whole school or office behind NAT)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"signup:addr:{address[:64]}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"signup:addr:{parsed.ipv4_mapped}"
        return f"signup:net:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"signup:addr:{parsed}"


def delay_after(failures: int, free: int, cap: timedelta) -> timedelta:
    """The wait after a key's ``failures``-th failure: none while free, then 1 s doubling."""
    if failures < free:
        return timedelta(0)
    exponent = min(failures - free, 30)  # 2**30 s is far past any cap
    return min(cap, timedelta(seconds=2**exponent))


def wait_seconds(session: Session, keys: list[str], now: datetime) -> int:
    """Seconds until every key in ``keys`` may try again (0: go ahead)."""
    rows = session.exec(select(AuthThrottle).where(col(AuthThrottle.key).in_(keys))).all()
    waits = [
        (row.blocked_until - now).total_seconds()
        for row in rows
        if row.blocked_until is not None and row.blocked_until > now
    ]
    return math.ceil(max(waits)) if waits else 0


def _locked_row(session: Session, key: str, now: datetime) -> AuthThrottle:
    # Insert-if-absent, then lock: concurrent failures on one key count exactly.
    serialize_writers(session)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"key": key, "failures": 0, "window_started_at": now, "last_failure_at": now}
    session.execute(insert(AuthThrottle).values(**values).on_conflict_do_nothing())
    row = session.exec(
        select(AuthThrottle)
        .where(AuthThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row


def record_failure(
    session: Session, key: str, *, free: int, policy: Policy, now: datetime
) -> timedelta:
    """Count one failure of ``key``; returns the wait it now owes."""
    row = _locked_row(session, key, now)
    if now - row.last_failure_at > policy.window:
        row.failures = 0
        row.window_started_at = now
    row.failures += 1
    row.last_failure_at = now
    delay = delay_after(row.failures, free, policy.max_delay)
    row.blocked_until = now + delay if delay else None
    session.add(row)
    return delay


def take(session: Session, key: str, *, limit: int, window: timedelta, now: datetime) -> int:
    """Count one event of ``key`` in a fixed window: 0 when allowed, else seconds to wait."""
    row = _locked_row(session, key, now)
    if now - row.window_started_at >= window:
        row.failures = 0
        row.window_started_at = now
    if row.failures >= limit:
        return math.ceil((row.window_started_at + window - now).total_seconds())
    row.failures += 1
    row.last_failure_at = now
    session.add(row)
    return 0


def clear(session: Session, keys: list[str]) -> int:
    """Forget the counts of ``keys``; returns how many there were."""
    result = session.execute(delete(AuthThrottle).where(col(AuthThrottle.key).in_(keys)))
    return int(getattr(result, "rowcount", 0) or 0)


def clear_prefix(session: Session, prefix: str) -> int:
    """Forget every key starting with ``prefix`` (an account's devices)."""
    result = session.execute(
        delete(AuthThrottle).where(col(AuthThrottle.key).startswith(prefix, autoescape=True))
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Sign-up counts reset after an hour; login counts after ``Policy.window`` (24 h by default).
SIGNUP_WINDOW = timedelta(hours=1)


def prune(session: Session, policy: Policy, now: datetime) -> int:
    """Delete the rows that no longer count: no event for longer than the longest window
    (``policy.window`` or the sign-up hour) and no wait still owed. Such a row is reset on
    its next use anyway, so deleting it changes no answer; without this the table keeps a
    row for every address and email ever tried. Returns how many were deleted."""
    horizon = now - max(policy.window, SIGNUP_WINDOW)
    result = session.execute(
        delete(AuthThrottle)
        .where(col(AuthThrottle.last_failure_at) < horizon)
        .where(
            or_(
                col(AuthThrottle.blocked_until).is_(None),
                col(AuthThrottle.blocked_until) <= now,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
