"""Password hashing (argon2id) and random secrets; only digests of secrets are stored."""

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.core.errors import ServiceBusy

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with a random salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash used weaker parameters than the current ones."""
    return _hasher.check_needs_rehash(password_hash)


def new_secret() -> str:
    """A URL-safe random secret with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 hex digest of a secret (secrets are random, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


class HashingGate:
    """Bounds concurrent argon2 work: at most ``slots`` hashes run, ``queue`` more may wait.

    Each argon2id hash takes 64 MiB and tens of milliseconds of a core; unbounded, a burst of
    logins ran 40 at once (1.2 GB, 9 s each). A caller beyond the waiting room, or one that
    waited ``timeout`` seconds, gets ``ServiceBusy`` (503 with Retry-After) at once instead.
    """

    def __init__(self, *, slots: int, queue: int, timeout: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._admitted = 0
        self._limit = slots + queue
        self._lock = threading.Lock()
        self._timeout = timeout

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one hashing slot for the block; ``ServiceBusy`` when none frees up in time."""
        with self._lock:
            if self._admitted >= self._limit:
                raise ServiceBusy("The server is busy checking passwords; try again shortly")
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=self._timeout):
                raise ServiceBusy("The server is busy checking passwords; try again shortly")
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1


def sign(secret_key: str, message: str) -> str:
    """HMAC-SHA256 of ``message`` under the app's secret key (hex)."""
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()
