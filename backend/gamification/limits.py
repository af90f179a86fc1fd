"""Per-volunteer submission limits (429 with Retry-After): sliding windows in this server
process, set so that an honest rater never meets them. The spam rule calls an answer under
1.5 s implausible, so an honest rater gives at most about 40 answers a minute; the limits are
60 a minute (a burst of "no lesions" on empty slices fits) and 1,800 an hour (2 s each for an
hour), set in ``Settings``. Each app holds its own counts (``app.state.submits``); with
several server processes each counts its own share of a volunteer's requests:
a volunteer spread over N processes meets the limit at up to N times the rate.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from backend.core.errors import TooManyAttempts

WINDOWS: tuple[tuple[float, int], ...] = ((60.0, 60), (3600.0, 1800))


class SubmitLimit:
    """Sliding windows of a user's recent submissions (``(seconds, most)`` each)."""

    def __init__(
        self,
        windows: tuple[tuple[float, int], ...] = WINDOWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.windows = windows
        self.clock = clock
        self.longest = max(seconds for seconds, _most in windows)
        self._seen: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user_id: int) -> None:
        """Count a submission of ``user_id`` now, or refuse it (``TooManyAttempts``, with the
        seconds until the window that is full has room)."""
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(user_id, deque())
            while seen and seen[0] <= now - self.longest:
                seen.popleft()
            for seconds, most in self.windows:
                recent = [t for t in seen if t > now - seconds] if len(seen) >= most else []
                if len(recent) >= most:
                    wait = recent[len(recent) - most] + seconds - now
                    raise TooManyAttempts(
                        f"More than {most} answers in {int(seconds)} s: take a short break "
                        "(careful answers earn the points)",
                        retry_after=int(wait) + 1,
                    )
            seen.append(now)
            if len(self._seen) > 100_000:  # forget the idle (bounded memory)
                for key in [
                    k for k, v in self._seen.items() if not v or v[-1] <= now - self.longest
                ]:
                    del self._seen[key]


def for_settings(settings: Any) -> SubmitLimit:
    """The limits of ``Settings`` (``submits_per_minute``, ``submits_per_hour``)."""
    return SubmitLimit(
        windows=((60.0, settings.submits_per_minute), (3600.0, settings.submits_per_hour))
    )
