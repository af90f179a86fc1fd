"""Admission control: at most ``limit`` API requests inside the app at once, the rest queued.

Why: endpoints and the per-request session run in a thread pool (40 threads), and a request
needs a thread at each step (open the session, run the endpoint, commit) while it holds a
pooled connection. With more requests in flight than connections, every thread could wait
for a connection while every connection waits for a thread to commit in: a deadlock that
stalled the server under a burst of 200 volunteers (issue 18). Admitting no more requests
than the pool has connections (and the thread pool has threads) makes that wait impossible,
whatever the burst, worker count or pool size. Requests beyond the limit wait here, in the
event loop and in arrival order, holding neither a thread nor a connection; when the waiting
room is full, or a request has waited too long, it gets a fast 503 with Retry-After.
"""

import asyncio
import time
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import ErrorRead


class FairGate:
    """A FIFO counting semaphore with a bounded waiting room and a wait timeout."""

    def __init__(self, *, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.free = limit
        self.waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self.limit - self.free

    async def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting in line up to ``timeout`` s; False when refused."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        if len(self.waiters) >= self.queue:
            return False
        loop = asyncio.get_running_loop()
        # The waiter's result says how the wait ended: True, release() handed us its slot;
        # False, the timer fired. (A timer callback, not wait_for and shield: two tasks per
        # waiting request cost a few percent of the server's CPU under a burst.)
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            granted = await waiter
        except BaseException:
            timer.cancel()
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed the slot just as we were cancelled: pass it on
            else:
                self._forget(waiter)
            raise
        timer.cancel()
        if not granted:
            self._forget(waiter)
        return granted

    def _forget(self, waiter: "asyncio.Future[bool]") -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)

    def release(self) -> None:
        """Give the slot to the longest waiter, or back to the pool."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.free += 1


def _expire(waiter: "asyncio.Future[bool]") -> None:
    if not waiter.done():
        waiter.set_result(False)


class Admission:
    """Pure ASGI middleware applying a ``FairGate`` to requests under ``prefix``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        queue: int,
        wait: float,
        prefix: str = "/api/",
        server_timing: bool = False,
    ) -> None:
        self.app = app
        self.gate = FairGate(limit=limit, queue=queue)
        self.wait = wait
        self.prefix = prefix
        # Off by default: how long a request took inside the server is for operators and load
        # tests, not for volunteers (it could tell kinds of task apart).
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        if not await self.gate.acquire(self.wait):
            await _busy(send)
            return
        if self.server_timing:
            send = _timed(send, arrived, time.perf_counter())
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.release()


def _timed(send: Send, arrived: float, admitted: float) -> Send:
    """``send`` adding ``Server-Timing: queue;dur=…, app;dur=…`` (milliseconds) to the answer."""

    async def timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            queued, inside = admitted - arrived, time.perf_counter() - admitted
            value = f"queue;dur={queued * 1000:.2f}, app;dur={inside * 1000:.2f}"
            message["headers"] = [*message.get("headers", []), (b"server-timing", value.encode())]
        await send(message)

    return timed


async def _busy(send: Send) -> None:
    busy = ErrorRead(detail="The server is busy; retry in a moment", code="server_busy")
    body = busy.model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
