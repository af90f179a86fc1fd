"""The admission gate: FIFO slots, a bounded waiting room, timeouts, and cancellation."""

import asyncio
import re

import pytest
from starlette.types import Message, Receive, Scope, Send

from backend.core.admission import Admission, FairGate


def test_slots_are_handed_over_in_arrival_order() -> None:
    async def scenario() -> list[int]:
        gate = FairGate(limit=1, queue=10)
        order: list[int] = []
        assert await gate.acquire(1)

        async def waiter(n: int) -> None:
            assert await gate.acquire(5)
            order.append(n)
            await asyncio.sleep(0)
            gate.release()

        tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(*tasks)
        assert gate.free == 1
        return order

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_a_full_waiting_room_and_a_long_wait_are_refused() -> None:
    async def scenario() -> None:
        gate = FairGate(limit=1, queue=1)
        assert await gate.acquire(1)
        waiting = asyncio.create_task(gate.acquire(0.05))
        await asyncio.sleep(0)
        assert await gate.acquire(1) is False  # the room holds one waiter
        assert await waiting is False  # waited 50 ms in vain
        assert not gate.waiters
        gate.release()
        assert gate.free == 1

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_up_its_place_without_leaking_a_slot() -> None:
    async def scenario() -> None:
        gate = FairGate(limit=1, queue=5)
        assert await gate.acquire(1)
        waiting = asyncio.create_task(gate.acquire(5))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.release()
        assert gate.free == 1
        assert not gate.waiters

    asyncio.run(scenario())


def test_a_slot_handed_to_a_waiter_as_it_is_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        gate = FairGate(limit=1, queue=5)
        assert await gate.acquire(1)
        first = asyncio.create_task(gate.acquire(5))
        second = asyncio.create_task(gate.acquire(5))
        await asyncio.sleep(0)
        gate.release()  # hands the slot to ``first`` ...
        first.cancel()  # ... which is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second  # the slot went on to the next in line, not lost
        gate.release()
        assert gate.free == 1
        assert not gate.waiters

    asyncio.run(scenario())


def test_a_waiter_that_times_out_leaves_the_line_and_the_slot_count_intact() -> None:
    async def scenario() -> None:
        gate = FairGate(limit=1, queue=5)
        assert await gate.acquire(1)
        assert await gate.acquire(0.01) is False
        assert not gate.waiters
        gate.release()
        assert gate.free == 1
        assert await gate.acquire(0)  # free again at once

    asyncio.run(scenario())


def test_server_timing_is_reported_only_when_turned_on() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(server_timing: bool) -> dict[bytes, bytes]:
        gate = Admission(app, limit=1, queue=1, wait=1, server_timing=server_timing)
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            sent.append(message)

        await gate({"type": "http", "path": "/api/x"}, receive, send)
        return dict(sent[0]["headers"])

    timed = asyncio.run(call(True))[b"server-timing"].decode()
    assert re.fullmatch(r"queue;dur=\d+\.\d\d, app;dur=\d+\.\d\d", timed)
    assert b"server-timing" not in asyncio.run(call(False))
